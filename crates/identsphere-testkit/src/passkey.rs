//! A software passkey for tests: `webauthn-authenticator-rs`'s `SoftPasskey`
//! (an authenticator making real P-256 keys and signatures in software)
//! driven through that crate's client, which builds `clientDataJSON` and
//! checks origin and RP id as a browser does. It speaks the JSON of
//! IdentSphere's API: the `publicKey` options in, `credential.toJSON()` out.
//!
//! `SoftPasskey` keeps no discoverable credentials. For username-less login
//! this wrapper does what a platform authenticator does: it remembers the
//! user handle of each credential it made, offers its credentials when the
//! server sends an empty `allowCredentials`, and returns the user handle with
//! the assertion (WebAuthn does not sign the user handle either).
use serde_json::{json, Value};
use url::Url;
use webauthn_authenticator_rs::{softpasskey::SoftPasskey, WebauthnAuthenticator};
use webauthn_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse};

/// A credential the authenticator made.
#[derive(Debug, Clone)]
pub struct HeldCredential {
    /// The credential id, base64url as in the API's JSON.
    pub id: String,
    /// The user handle the relying party gave at registration (base64url).
    pub user_handle: String,
}

/// A passkey authenticator plus the browser around it, at one origin.
pub struct SoftAuthenticator {
    device: SoftPasskey,
    origin: Url,
    held: Vec<HeldCredential>,
}

impl SoftAuthenticator {
    /// An authenticator used from pages at `origin`. It performs user
    /// verification (as a PIN or biometric would).
    pub fn new(origin: &str) -> Self {
        Self {
            device: SoftPasskey::new(true),
            origin: origin.parse().expect("an origin URL"),
            held: Vec::new(),
        }
    }

    /// The same device, used from pages at another origin (a phishing site).
    pub fn at_origin(&mut self, origin: &str) -> &mut Self {
        self.origin = origin.parse().expect("an origin URL");
        self
    }

    /// The credentials made so far.
    pub fn held(&self) -> &[HeldCredential] {
        &self.held
    }

    /// Answers `navigator.credentials.create({publicKey})`: the new
    /// credential as JSON, or the client's error.
    pub fn register(&mut self, public_key: &Value) -> Result<Value, String> {
        let options: CreationChallengeResponse =
            serde_json::from_value(json!({ "publicKey": public_key }))
                .map_err(|e| e.to_string())?;
        let user_handle = public_key["user"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let credential = self
            .device
            .do_registration(self.origin.clone(), options)
            .map_err(|e| format!("{e:?}"))?;
        let credential = serde_json::to_value(credential).map_err(|e| e.to_string())?;
        self.held.push(HeldCredential {
            id: credential["id"].as_str().unwrap_or_default().to_owned(),
            user_handle,
        });
        Ok(credential)
    }

    /// Answers `navigator.credentials.get({publicKey})` with the first held
    /// credential the options allow (any, when they list none): the
    /// assertion as JSON, with the user handle.
    pub fn login(&mut self, public_key: &Value) -> Result<Value, String> {
        let allowed: Vec<&str> = public_key["allowCredentials"]
            .as_array()
            .map(|list| list.iter().filter_map(|c| c["id"].as_str()).collect())
            .unwrap_or_default();
        let held = self
            .held
            .iter()
            .find(|h| allowed.is_empty() || allowed.contains(&h.id.as_str()))
            .cloned()
            .ok_or("no credential for this site")?;
        self.login_with(public_key, &held.id, Some(&held.user_handle))
    }

    /// Signs `public_key`'s challenge with credential `id`, returning
    /// `user_handle` (base64url) with it: lets tests send what a
    /// misbehaving client would.
    pub fn login_with(
        &mut self,
        public_key: &Value,
        id: &str,
        user_handle: Option<&str>,
    ) -> Result<Value, String> {
        let mut public_key = public_key.clone();
        // The discovery step: the authenticator picks its credential.
        public_key["allowCredentials"] = json!([{ "type": "public-key", "id": id }]);
        let options: RequestChallengeResponse =
            serde_json::from_value(json!({ "publicKey": public_key }))
                .map_err(|e| e.to_string())?;
        let assertion = self
            .device
            .do_authentication(self.origin.clone(), options)
            .map_err(|e| format!("{e:?}"))?;
        let mut assertion = serde_json::to_value(assertion).map_err(|e| e.to_string())?;
        assertion["response"]["userHandle"] = user_handle.map_or(Value::Null, Value::from);
        Ok(assertion)
    }
}
