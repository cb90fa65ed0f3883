//! A permission guard for the host application's routes.
//!
//! ```no_run
//! # fn mount(auth: identsphere::AuthService) {
//! use axum::{routing::get, Router};
//! use identsphere::CurrentUser;
//!
//! async fn invoices(user: CurrentUser) -> String {
//!     format!("invoices of {:?}", user.org_id())
//! }
//!
//! let app: Router = Router::new()
//!     .route("/invoices", get(invoices))
//!     // Guards the routes above it, not the ones added after.
//!     .route_layer(auth.require_permission("app:invoices.read"))
//!     .with_state(auth.state().clone());
//! # }
//! ```
use crate::{config::ConfigError, error::ApiError, extract::CurrentUser, state::AppState};
use axum::{
    extract::{FromRequestParts, Request},
    http::request::Parts,
    response::{IntoResponse, Response},
};
use identsphere_core::permissions::Permission;
use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};
use tower::{Layer, Service};

/// A layer that lets a request through only when its caller holds one
/// permission in its active organization (see [`CurrentUser`]).
///
/// It answers problem+json itself: 401 `unauthorized` without a valid
/// credential, 403 `csrf_failed` for a cookie request without the CSRF echo,
/// 403 `forbidden` naming the permission when the caller lacks it (or has no
/// active organization), 403 `mfa_required` when the active organization
/// requires a second factor that the session was signed in without. Otherwise it puts the resolved [`CurrentUser`] in the
/// request extensions, where the handler's `CurrentUser` extractor finds it
/// without reading the store again.
///
/// Use it with `Router::route_layer`, so that unmatched paths still answer
/// 404 rather than 401. The guard is a check at the door; handlers that act
/// on an organization's data still scope every query by
/// [`CurrentUser::org_id`].
#[derive(Clone, Debug)]
pub struct RequirePermission {
    state: AppState,
    permission: Permission,
}

impl RequirePermission {
    /// A guard for `permission`: a catalogue permission (`members:read`) or an
    /// `app:` permission registered in
    /// [`AuthServiceConfig::app_permissions`](crate::AuthServiceConfig::app_permissions).
    ///
    /// # Errors
    /// An unknown permission name, or an `app:` permission the configuration
    /// does not register (nobody could ever hold it, so every request would
    /// be refused).
    pub fn new(state: AppState, permission: &str) -> Result<Self, ConfigError> {
        let parsed = Permission::parse(permission).map_err(|message| ConfigError {
            field: "permission",
            message,
        })?;
        if parsed.as_str().starts_with("app:")
            && !state.identity.config().app_permissions.contains(&parsed)
        {
            return Err(ConfigError {
                field: "permission",
                message: format!(
                    "{permission:?} is not in app_permissions; register it so that roles can grant it"
                ),
            });
        }
        Ok(Self {
            state,
            permission: parsed,
        })
    }

    /// The permission this guard requires.
    pub fn permission(&self) -> &str {
        self.permission.as_str()
    }

    /// Authenticates, resolves the caller's standing and checks the permission.
    async fn check(&self, parts: &mut Parts) -> Result<(), ApiError> {
        let user = CurrentUser::from_request_parts(parts, &self.state).await?;
        user.require(self.permission.as_str())
    }
}

impl<S> Layer<S> for RequirePermission {
    type Service = RequirePermissionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequirePermissionService {
            inner,
            guard: self.clone(),
        }
    }
}

/// The service made by [`RequirePermission`].
#[derive(Clone, Debug)]
pub struct RequirePermissionService<S> {
    inner: S,
    guard: RequirePermission,
}

impl<S> Service<Request> for RequirePermissionService<S>
where
    S: Service<Request, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // The service that was polled ready goes into the future; a clone
        // takes its place for the next poll_ready.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let guard = self.guard.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            if let Err(refusal) = guard.check(&mut parts).await {
                return Ok(refusal.into_response());
            }
            inner.call(Request::from_parts(parts, body)).await
        })
    }
}
