//! The session cookies of API.md §3, and the device cookie.
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use identsphere_core::{
    ids::SessionId,
    secret::{constant_time_eq, derive_token},
    service::IssuedTokens,
};

pub(crate) const ACCESS: &str = "identsphere_access";
pub(crate) const REFRESH: &str = "identsphere_refresh";
pub(crate) const CSRF: &str = "identsphere_csrf";
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";
/// Marks a browser that signed in before (see `identsphere_core::service`'s
/// device cookies): it keeps a login-failure budget of its own.
pub(crate) const DEVICE: &str = "identsphere_device";
/// Kept by the browser that signed up: only it finishes verification
/// without choosing the password anew.
pub(crate) const SIGNUP: &str = "identsphere_signup";
/// The refresh and device cookies only travel to the endpoints that use them.
const AUTH_PATH: &str = "/v1/auth";
/// The sign-up cookie only travels to verification.
const VERIFY_PATH: &str = "/v1/auth/email/verify";
/// As long as a verification link lives.
const SIGNUP_MAX_AGE_SECS: i64 = 24 * 3600;
/// How long a browser stays known after its last sign-in.
const DEVICE_MAX_AGE_SECS: i64 = 90 * 24 * 3600;

#[derive(Clone)]
pub(crate) struct CookieSettings {
    pub(crate) secure: bool,
    /// Binds CSRF tokens to their session (a sub-key of the server secret).
    pub(crate) csrf_key: [u8; 32],
}

impl std::fmt::Debug for CookieSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieSettings")
            .field("secure", &self.secure)
            .finish_non_exhaustive()
    }
}

impl CookieSettings {
    fn cookie(
        &self,
        name: &'static str,
        value: String,
        path: &'static str,
        max_age: i64,
        http_only: bool,
    ) -> Cookie<'static> {
        Cookie::build((name, value))
            .path(path)
            .http_only(http_only)
            .secure(self.secure)
            .same_site(SameSite::Lax)
            .max_age(time_duration(max_age))
            .build()
    }

    /// The CSRF token of a session: an HMAC of its id. Equal cookie and
    /// header values are not enough; they must be this session's, so a
    /// cookie planted by a sibling subdomain (cookie tossing) or left from
    /// another session does not pass.
    pub(crate) fn csrf_token(&self, session: SessionId) -> String {
        derive_token(&self.csrf_key, "", &format!("csrf\0{session}"))
    }

    /// Whether the request's CSRF cookie is `session`'s token (the header
    /// was already compared with the cookie).
    pub(crate) fn csrf_bound(&self, jar: &CookieJar, session: SessionId) -> bool {
        jar.get(CSRF)
            .is_some_and(|c| constant_time_eq(c.value(), &self.csrf_token(session)))
    }

    /// Sets the access, refresh and CSRF cookies for a token pair.
    pub(crate) fn set_session(&self, jar: CookieJar, tokens: &IssuedTokens) -> CookieJar {
        let refresh_age = tokens.refresh_expires_in;
        let csrf = self.csrf_token(tokens.session.id);
        jar.add(self.cookie(
            ACCESS,
            tokens.access_token.clone(),
            "/",
            tokens.expires_in,
            true,
        ))
        .add(self.cookie(
            REFRESH,
            tokens.refresh_token.clone(),
            AUTH_PATH,
            refresh_age,
            true,
        ))
        // Readable by page scripts on purpose: they echo it in X-CSRF-Token.
        .add(self.cookie(CSRF, csrf, "/", refresh_age, false))
    }

    /// [`Self::set_session`] after a sign-in, with the browser's new device cookie.
    pub(crate) fn set_sign_in(
        &self,
        jar: CookieJar,
        tokens: &IssuedTokens,
        device: String,
    ) -> CookieJar {
        self.set_session(jar, tokens).add(self.cookie(
            DEVICE,
            device,
            AUTH_PATH,
            DEVICE_MAX_AGE_SECS,
            true,
        ))
    }

    /// Sets the sign-up proof of a browser that just signed up.
    pub(crate) fn set_signup(&self, jar: CookieJar, proof: String) -> CookieJar {
        jar.add(self.cookie(SIGNUP, proof, VERIFY_PATH, SIGNUP_MAX_AGE_SECS, true))
    }

    /// Expires the sign-up proof once verification is done.
    pub(crate) fn clear_signup(&self, jar: CookieJar) -> CookieJar {
        jar.add(self.cookie(SIGNUP, String::new(), VERIFY_PATH, 0, true))
    }

    /// Expires the three session cookies (the device cookie stays: the
    /// browser is still one that signed in).
    pub(crate) fn clear(&self, jar: CookieJar) -> CookieJar {
        jar.add(self.cookie(ACCESS, String::new(), "/", 0, true))
            .add(self.cookie(REFRESH, String::new(), AUTH_PATH, 0, true))
            .add(self.cookie(CSRF, String::new(), "/", 0, false))
    }
}

fn time_duration(secs: i64) -> time::Duration {
    time::Duration::seconds(secs)
}
