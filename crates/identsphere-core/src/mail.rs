//! Outgoing mail: the messages IdentSphere sends and the transport trait.
use crate::Email;
use async_trait::async_trait;

/// A plain-text message.
#[derive(Clone)]
pub struct Mail {
    /// Recipient.
    pub to: Email,
    /// Subject line.
    pub subject: String,
    /// Body; may contain a one-time link, so it is never logged.
    pub text: String,
}

impl std::fmt::Debug for Mail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mail")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// Delivers mail.
#[async_trait]
pub trait Mailer: Send + Sync + std::fmt::Debug {
    /// Sends `mail`.
    ///
    /// # Errors
    /// A transport failure, described without the message's content.
    async fn send(&self, mail: Mail) -> Result<(), String>;
}

/// The messages.
pub mod templates {
    use super::Mail;
    use crate::Email;

    /// Asks the owner of a new account to verify the address.
    pub fn verify_email(to: &Email, link: &str) -> Mail {
        Mail {
            to: to.clone(),
            subject: "Verify your email address".into(),
            text: format!(
                "Welcome!\n\nConfirm that this is your address by opening this link:\n\n{link}\n\n\
                 The link works once and expires in 24 hours. If you did not sign up, ignore this message.\n"
            ),
        }
    }

    /// Sent when someone signs up with an address whose account was never
    /// verified: the link lets the mailbox's owner finish it, choosing the
    /// password anew (whoever chose the first one does not keep it).
    pub fn finish_signup(to: &Email, link: &str) -> Mail {
        Mail {
            to: to.clone(),
            subject: "Finish creating your account".into(),
            text: format!(
                "Someone (perhaps you) started creating an account with this address, and it was \
                 never confirmed.\n\nTo finish it, open this link and choose your password:\n\n{link}\n\n\
                 The link works once and expires in 24 hours. If you did not sign up, ignore this \
                 message: nobody can use the account until this address is confirmed.\n"
            ),
        }
    }

    /// Tells the owner of an address that someone tried to sign up with it again.
    pub fn already_registered(to: &Email, login_url: &str) -> Mail {
        Mail {
            to: to.clone(),
            subject: "Sign-up attempt with your address".into(),
            text: format!(
                "Someone tried to create an account with this address, which already has one.\n\n\
                 If it was you, sign in at {login_url} or reset your password there.\n\
                 If not, you can ignore this message: nothing has changed.\n"
            ),
        }
    }

    /// A password-reset link.
    pub fn reset_password(to: &Email, link: &str) -> Mail {
        Mail {
            to: to.clone(),
            subject: "Reset your password".into(),
            text: format!(
                "A password reset was requested for your account. Choose a new password here:\n\n{link}\n\n\
                 The link works once and expires in 1 hour. Resetting signs you out everywhere.\n\
                 If you did not ask for this, ignore this message.\n"
            ),
        }
    }

    /// Confirms a new address during an email change.
    pub fn confirm_email_change(to: &Email, link: &str) -> Mail {
        Mail {
            to: to.clone(),
            subject: "Confirm your new email address".into(),
            text: format!(
                "Confirm that you want to use this address for your account:\n\n{link}\n\n\
                 The link works once and expires in 24 hours.\n"
            ),
        }
    }

    /// Tells the old address that the account's email has changed.
    pub fn email_changed(to: &Email) -> Mail {
        Mail {
            to: to.clone(),
            subject: "Your email address was changed".into(),
            text: "The email address of your account was just changed, and this address no longer signs in.\n\
                   If you did not do this, contact support at once.\n"
                .into(),
        }
    }

    /// Tells the owner that their password was reset or changed, and lists
    /// what else can sign in to the account, so that a factor or key an
    /// intruder left behind is seen.
    pub fn password_replaced(to: &Email, reset: bool, held: &Credentials, review: &str) -> Mail {
        let what = if reset { "reset" } else { "changed" };
        let mut text = format!(
            "The password of your account was just {what}, and other sessions were signed out. \
             If you did not do this, reset it at once.\n\n"
        );
        if held.is_empty() {
            text.push_str("Nothing else can sign in to your account: no authenticator app, passkey or API key.\n");
        } else {
            text.push_str("These can also sign in to your account or act for it:\n");
            if held.totp {
                text.push_str("- an authenticator app (two-factor codes)\n");
            }
            for name in &held.passkeys {
                text.push_str(&format!("- passkey \"{name}\"\n"));
            }
            for name in &held.api_keys {
                text.push_str(&format!("- API key \"{name}\"\n"));
            }
            text.push_str("\nIf you do not recognise one of them, remove it.\n");
        }
        text.push_str(&format!("\nReview your account's security: {review}\n"));
        Mail {
            to: to.clone(),
            subject: format!("Your password was {what}"),
            text,
        }
    }

    /// What can sign in to an account besides its password, by name.
    #[derive(Debug, Default)]
    pub struct Credentials {
        /// A confirmed authenticator app.
        pub totp: bool,
        /// Passkey names.
        pub passkeys: Vec<String>,
        /// Active API key names.
        pub api_keys: Vec<String>,
    }

    impl Credentials {
        /// Nothing at all.
        pub fn is_empty(&self) -> bool {
            !self.totp && self.passkeys.is_empty() && self.api_keys.is_empty()
        }
    }

    /// Warns that wrong second-factor codes keep coming for the account:
    /// someone who knows the password is trying to sign in.
    pub fn mfa_attempts(to: &Email, reset_url: &str) -> Mail {
        Mail {
            to: to.clone(),
            subject: "Someone is trying to sign in to your account".into(),
            text: format!(
                "Several wrong two-factor codes were entered for your account just now, after a \
                 correct password. If this was not you, someone knows your password: reset it at \
                 once at {reset_url}. Your second factor kept them out.\n"
            ),
        }
    }

    /// An invitation to join an organization.
    pub fn invitation(to: &Email, org_name: &str, link: &str) -> Mail {
        Mail {
            to: to.clone(),
            subject: "You have been invited to an organization".into(),
            text: format!(
                "You have been invited to join the organization \"{org_name}\".\n\n\
                 Accept the invitation here:\n\n{link}\n\n\
                 The link works once and expires in 7 days. If you did not expect it, ignore this message.\n"
            ),
        }
    }
}
