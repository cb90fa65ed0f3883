//! The session cookies of API.md §3.
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use identsphere_core::{secret::random_token, service::IssuedTokens};

pub(crate) const ACCESS: &str = "identsphere_access";
pub(crate) const REFRESH: &str = "identsphere_refresh";
pub(crate) const CSRF: &str = "identsphere_csrf";
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";
/// The refresh cookie only travels to the endpoints that use it.
const REFRESH_PATH: &str = "/v1/auth";

#[derive(Clone, Debug)]
pub(crate) struct CookieSettings {
    pub(crate) secure: bool,
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

    /// Sets the access, refresh and CSRF cookies for a token pair.
    pub(crate) fn set_session(&self, jar: CookieJar, tokens: &IssuedTokens) -> CookieJar {
        let refresh_age = tokens.refresh_expires_in;
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
            REFRESH_PATH,
            refresh_age,
            true,
        ))
        // Readable by page scripts on purpose: they echo it in X-CSRF-Token.
        .add(self.cookie(CSRF, random_token(""), "/", refresh_age, false))
    }

    /// Expires all three cookies.
    pub(crate) fn clear(&self, jar: CookieJar) -> CookieJar {
        jar.add(self.cookie(ACCESS, String::new(), "/", 0, true))
            .add(self.cookie(REFRESH, String::new(), REFRESH_PATH, 0, true))
            .add(self.cookie(CSRF, String::new(), "/", 0, false))
    }
}

fn time_duration(secs: i64) -> time::Duration {
    time::Duration::seconds(secs)
}
