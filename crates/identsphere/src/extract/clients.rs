//! Extractors of the client API: the master credentials (HTTP Basic), a
//! client's key (`x-api-key: isck_…`) and a machine token (`Authorization:
//! Bearer`, for host apps that serve machine users).
use super::{bearer, ClientMeta, API_KEY_HEADER};
use crate::{error::ApiError, state::AppState};
use axum::{
    extract::{FromRef, FromRequestParts},
    http::{header, request::Parts, HeaderMap},
};
use base64::{engine::general_purpose::STANDARD, Engine};
use identsphere_core::{
    store::{Client, MachineToken},
    CoreError,
};

/// A request authenticated with the master credentials (`Authorization:
/// Basic`). Refusals are 401 with a `Basic` challenge; wrong guesses count
/// against the caller's address; with no master credentials configured the
/// client API answers 404.
#[derive(Debug, Clone, Copy)]
pub struct Master;

/// The client whose key (`x-api-key: isck_…`) came with the request.
#[derive(Debug, Clone)]
pub struct ClientKey(pub Client);

/// A checked machine token (`Authorization: Bearer`): signature, expiry, and
/// its stored record, unrevoked, read on every request.
///
/// Host apps put it on the routes their machine users call:
///
/// ```no_run
/// use axum::{routing::get, Router};
/// use identsphere::{extract::Machine, AppState};
///
/// async fn whoami(Machine(token): Machine) -> String {
///     token.identifier
/// }
///
/// fn routes(state: AppState) -> Router {
///     Router::new().route("/whoami", get(whoami)).with_state(state)
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Machine(pub MachineToken);

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, pass) = decoded.split_once(':')?;
    Some((user.to_owned(), pass.to_owned()))
}

impl<S> FromRequestParts<S> for Master
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let credentials = basic_credentials(&parts.headers);
        let Ok(ClientMeta(meta)) = ClientMeta::from_request_parts(parts, state).await;
        AppState::from_ref(state)
            .identity
            .authenticate_master(
                credentials.as_ref().map(|(u, p)| (u.as_str(), p.as_str())),
                &meta,
            )
            .await
            .map_err(ApiError::Basic)?;
        Ok(Self)
    }
}

impl<S> FromRequestParts<S> for ClientKey
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let key = parts
            .headers
            .get(API_KEY_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .ok_or(CoreError::Unauthorized)?;
        let client = AppState::from_ref(state)
            .identity
            .authenticate_client(key)
            .await?;
        tracing::Span::current().record("client.id", tracing::field::display(client.id));
        Ok(Self(client))
    }
}

impl<S> FromRequestParts<S> for Machine
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers)?.ok_or(CoreError::Unauthorized)?;
        let token = AppState::from_ref(state)
            .identity
            .authenticate_machine(token)
            .await?;
        Ok(Self(token))
    }
}
