//! WebAuthn (passkeys) as a relying party: `webauthn-rs` does the protocol
//! and the cryptography; this module fixes IdentSphere's choices and keeps
//! `webauthn-rs` types out of the other layers (they see JSON and bytes).
//!
//! Choices:
//! - Passkeys are registered with user verification required, so a passkey
//!   login proves possession *and* a PIN or biometric: it counts as MFA.
//! - Registration asks for a discoverable credential (`residentKey:
//!   "preferred"`), which is what makes username-less login possible; platform
//!   authenticators and password managers make one anyway.
//! - Login is always discoverable: the server never lists a user's
//!   credentials for an email address, so the endpoint cannot reveal whether
//!   an address has an account.
//! - Ceremony state is serialised into the store (several instances), never
//!   sent to the client.
use crate::error::{CoreError, Result};
use serde_json::Value;
use url::Url;
use uuid::Uuid;
use webauthn_rs::prelude::{
    CredentialID, DiscoverableAuthentication, Passkey, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, RequestChallengeResponse, Webauthn, WebauthnBuilder,
};

/// Where passkeys may be used.
#[derive(Debug, Clone, Default)]
pub struct PasskeySettings {
    /// The relying-party id (a registrable domain); by default the public
    /// URL's host.
    pub rp_id: Option<String>,
    /// Origins besides the public URL's whose pages may run the ceremonies
    /// (the host app's front end). Each must be on the RP id or a subdomain.
    pub extra_origins: Vec<Url>,
}

/// The relying party.
pub struct RelyingParty {
    webauthn: Webauthn,
}

impl std::fmt::Debug for RelyingParty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RelyingParty(..)")
    }
}

/// Whether `origin`'s host is `rp_id` or a subdomain of it (WebAuthn's rule).
fn origin_fits(origin: &Url, rp_id: &str) -> bool {
    origin
        .domain()
        .is_some_and(|host| host == rp_id || host.ends_with(&format!(".{rp_id}")))
}

impl RelyingParty {
    /// The relying party for `public_url` and `settings`.
    ///
    /// # Errors
    /// `Validation` when the RP id is not a domain of every origin (an IP
    /// address never is: WebAuthn needs a domain name).
    pub fn new(public_url: &Url, settings: &PasskeySettings) -> Result<Self> {
        let rp_id = match &settings.rp_id {
            Some(id) => id.clone(),
            None => public_url.domain().unwrap_or_default().to_owned(),
        };
        let mut origins = vec![public_url];
        origins.extend(settings.extra_origins.iter());
        if let Some(bad) = origins.iter().find(|o| !origin_fits(o, &rp_id)) {
            return Err(CoreError::field(
                "webauthn_rp_id",
                format!("`{rp_id}` is not a domain name that the origin {bad} is on"),
            ));
        }
        let mut builder = WebauthnBuilder::new(&rp_id, public_url)
            .map_err(|e| CoreError::field("webauthn_rp_id", e.to_string()))?;
        for origin in &settings.extra_origins {
            builder = builder.append_allowed_origin(origin);
        }
        let webauthn = builder
            .build()
            .map_err(|e| CoreError::field("webauthn_rp_id", e.to_string()))?;
        Ok(Self { webauthn })
    }

    /// Options for registering a passkey of `user`, and the state to keep.
    /// `exclude` lists the user's credential ids, so an authenticator that
    /// already holds one says so instead of making a duplicate.
    ///
    /// # Errors
    /// `Internal` when `webauthn-rs` refuses (it does not for valid input).
    pub fn start_registration(
        &self,
        user: Uuid,
        name: &str,
        display_name: &str,
        exclude: Vec<CredentialID>,
    ) -> Result<(Value, String)> {
        let (options, state) = self
            .webauthn
            .start_passkey_registration(user, name, display_name, Some(exclude))
            .map_err(internal)?;
        let mut options = to_json(&options)?;
        // Ask for a discoverable credential: the username-less login needs one.
        if let Some(selection) = options.pointer_mut("/publicKey/authenticatorSelection") {
            selection["residentKey"] = Value::from("preferred");
        }
        Ok((options, state_json(&state)?))
    }

    /// Verifies the authenticator's answer to a registration.
    ///
    /// # Errors
    /// `Validation` on `credential` when it is malformed or does not verify.
    pub fn finish_registration(&self, credential: Value, state: &str) -> Result<NewCredential> {
        let credential: RegisterPublicKeyCredential =
            serde_json::from_value(credential).map_err(|e| {
                CoreError::field("credential", format!("not a WebAuthn credential: {e}"))
            })?;
        let state: PasskeyRegistration = from_state(state)?;
        let passkey = self
            .webauthn
            .finish_passkey_registration(&credential, &state)
            .map_err(|e| {
                CoreError::field(
                    "credential",
                    format!("the registration did not verify: {e}"),
                )
            })?;
        Ok(NewCredential {
            credential_id: passkey.cred_id().to_vec(),
            credential: state_json(&passkey)?,
        })
    }

    /// Options for a username-less login, and the state to keep. With
    /// `conditional`, the options ask for the browser's autofill UI.
    ///
    /// # Errors
    /// `Internal` when `webauthn-rs` refuses (it does not).
    pub fn start_login(&self, conditional: bool) -> Result<(Value, String)> {
        let (options, state) = self
            .webauthn
            .start_discoverable_authentication()
            .map_err(internal)?;
        let mut options = to_json::<RequestChallengeResponse>(&options)?;
        if !conditional {
            // webauthn-rs always asks for conditional mediation; a "sign in
            // with a passkey" button wants the modal dialog.
            if let Some(o) = options.as_object_mut() {
                o.remove("mediation");
            }
        }
        Ok((options, state_json(&state)?))
    }

    /// Reads which user and credential an assertion claims, before anything
    /// is verified, to find the stored credential.
    ///
    /// # Errors
    /// `PasskeyRejected` when it is malformed or has no user handle.
    pub fn identify(&self, assertion: Value) -> Result<Assertion> {
        let assertion: PublicKeyCredential =
            serde_json::from_value(assertion).map_err(|_| CoreError::PasskeyRejected)?;
        let (user, credential_id) = self
            .webauthn
            .identify_discoverable_authentication(&assertion)
            .map_err(|_| CoreError::PasskeyRejected)?;
        let credential_id = credential_id.to_vec();
        Ok(Assertion {
            user,
            credential_id,
            inner: assertion,
        })
    }

    /// Verifies `assertion` against the stored credential and the login
    /// state. Returns the credential to store back when its signature
    /// counter or backup flags moved.
    ///
    /// # Errors
    /// `PasskeyRejected` when it does not verify (wrong challenge, origin,
    /// signature, missing user verification, or a counter that went back,
    /// which suggests a cloned authenticator).
    pub fn finish_login(
        &self,
        assertion: &Assertion,
        state: &str,
        stored: &str,
    ) -> Result<Option<String>> {
        let state: DiscoverableAuthentication = from_state(state)?;
        let mut passkey: Passkey = from_state(stored)?;
        let result = self
            .webauthn
            .finish_discoverable_authentication_v2(&assertion.inner, state, &passkey)
            .map_err(|e| {
                tracing::info!(error = %e, "passkey assertion refused");
                CoreError::PasskeyRejected
            })?;
        match passkey.update_credential(&result) {
            Some(true) => Ok(Some(state_json(&passkey)?)),
            _ => Ok(None),
        }
    }
}

/// A verified new credential, as the store keeps it.
#[derive(Debug, Clone)]
pub struct NewCredential {
    /// The credential id (unique among all users).
    pub credential_id: Vec<u8>,
    /// The credential (public key, counter, flags) as JSON.
    pub credential: String,
}

/// A login assertion, parsed but not yet verified.
#[derive(Debug)]
pub struct Assertion {
    /// The user handle it carries: the user id given at registration.
    pub user: Uuid,
    /// The credential it claims to be signed by.
    pub credential_id: Vec<u8>,
    inner: PublicKeyCredential,
}

fn internal(e: impl std::fmt::Display) -> CoreError {
    CoreError::Internal(format!("webauthn: {e}"))
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Value> {
    serde_json::to_value(value).map_err(internal)
}

fn state_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(internal)
}

fn from_state<T: serde::de::DeserializeOwned>(state: &str) -> Result<T> {
    serde_json::from_str(state).map_err(internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        s.parse().unwrap()
    }

    #[test]
    fn rp_id_defaults_to_the_public_host_and_origins_must_be_on_it() {
        let public = url("https://auth.example.com");
        assert!(RelyingParty::new(&public, &PasskeySettings::default()).is_ok());
        let parent = PasskeySettings {
            rp_id: Some("example.com".into()),
            extra_origins: vec![url("https://app.example.com")],
        };
        assert!(RelyingParty::new(&public, &parent).is_ok());
        let foreign = PasskeySettings {
            rp_id: Some("example.com".into()),
            extra_origins: vec![url("https://example.org")],
        };
        assert!(RelyingParty::new(&public, &foreign).is_err());
        // "myexample.com" is not on "example.com".
        let lookalike = PasskeySettings {
            rp_id: Some("example.com".into()),
            extra_origins: vec![url("https://myexample.com")],
        };
        assert!(RelyingParty::new(&public, &lookalike).is_err());
        assert!(
            RelyingParty::new(&url("http://127.0.0.1:8080"), &PasskeySettings::default()).is_err()
        );
    }

    #[test]
    fn registration_asks_for_a_discoverable_verified_credential() {
        let rp =
            RelyingParty::new(&url("https://example.com"), &PasskeySettings::default()).unwrap();
        let (options, state) = rp
            .start_registration(
                Uuid::now_v7(),
                "ada@example.com",
                "Ada",
                vec![vec![1, 2, 3]],
            )
            .unwrap();
        let selection = &options["publicKey"]["authenticatorSelection"];
        assert_eq!(selection["residentKey"], "preferred");
        assert_eq!(selection["userVerification"], "required");
        assert_eq!(options["publicKey"]["rp"]["id"], "example.com");
        assert_eq!(options["publicKey"]["excludeCredentials"][0]["id"], "AQID");
        assert!(!state.is_empty());
    }

    #[test]
    fn login_is_modal_unless_conditional_ui_is_asked_for() {
        let rp =
            RelyingParty::new(&url("https://example.com"), &PasskeySettings::default()).unwrap();
        let (modal, _) = rp.start_login(false).unwrap();
        assert!(modal.get("mediation").is_none());
        assert_eq!(
            modal["publicKey"]["allowCredentials"],
            serde_json::json!([])
        );
        let (conditional, _) = rp.start_login(true).unwrap();
        assert_eq!(conditional["mediation"], "conditional");
    }
}
