//! Device cookies: OWASP's defence against targeted lockout ("Slow Down
//! Online Guessing Attacks with Device Cookies").
//!
//! After a successful sign-in the browser gets a cookie that names a random
//! nonce and is bound to the account by an HMAC under a server key. A login
//! that presents a valid one is charged to that device's own failure budget
//! (`login_failures_device`) instead of the account's: an attacker guessing
//! from elsewhere spends the account's budget and locks out only the
//! browsers that never signed in, while the owner's browser keeps working.
//! A stolen cookie is worth one more device budget, no more: it does not
//! sign anyone in.
use super::Identity;
use crate::{
    secret::{constant_time_eq, derive_token, random_token},
    Email,
};

/// Longest nonce looked at (ours are 43 characters).
const MAX_NONCE_LEN: usize = 64;

impl Identity {
    /// A device cookie value for a browser that has just signed in to the
    /// account at `email`: `NONCE.MAC`.
    pub fn device_cookie(&self, email: &Email) -> String {
        let nonce = random_token("");
        let mac = self.device_mac(email.as_str(), &nonce);
        format!("{nonce}.{mac}")
    }

    /// The nonce of `cookie` when it was issued for `account` (the
    /// normalised address); `None` for a missing, forged or other account's one.
    pub(super) fn trusted_device<'a>(
        &self,
        account: &str,
        cookie: Option<&'a str>,
    ) -> Option<&'a str> {
        let (nonce, mac) = cookie?.split_once('.')?;
        if nonce.is_empty() || nonce.len() > MAX_NONCE_LEN {
            return None;
        }
        constant_time_eq(mac, &self.device_mac(account, nonce)).then_some(nonce)
    }

    /// Under the rate-limit key, in a message of its own ("device-cookie"
    /// is no limit's name, so no limiter key can equal a MAC).
    fn device_mac(&self, account: &str, nonce: &str) -> String {
        derive_token(
            &self.config.limit_key,
            "",
            &format!("device-cookie\0{account}\0{nonce}"),
        )
    }
}
