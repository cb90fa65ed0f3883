//! RFC 9457 problem responses: the one place where outcomes become status codes.
use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use identsphere_core::{CoreError, FieldError};
use serde::Serialize;
use utoipa::ToSchema;

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// `urn:identsphere:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the problem type.
    pub title: &'static str,
    /// HTTP status.
    pub status: u16,
    /// Explanation for this occurrence.
    pub detail: String,
    /// Stable machine-readable code (API.md §2).
    pub code: &'static str,
    /// For `validation_failed`: the fields at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<FieldErrorSchema>>)]
    pub errors: Option<Vec<FieldError>>,
}

/// One invalid field.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct FieldErrorSchema {
    field: String,
    message: String,
}

/// Every error the HTTP layer can answer with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A domain outcome.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// A domain outcome of an endpoint behind HTTP Basic (the master
    /// credentials): a 401 challenges with `Basic`, not `Bearer`.
    #[error(transparent)]
    Basic(CoreError),
    /// Malformed JSON or request.
    #[error("{0}")]
    BadRequest(String),
    /// The body is not `application/json`.
    #[error("expected application/json")]
    UnsupportedMediaType,
    /// The body exceeds its limit.
    #[error("request body too large")]
    PayloadTooLarge,
    /// A cookie-authenticated unsafe request without a matching CSRF token.
    #[error("missing or mismatched CSRF token")]
    CsrfFailed,
    /// No such route.
    #[error("no such resource")]
    NoRoute,
    /// The route exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The request body did not arrive within the body-read timeout
    /// ([`crate::AuthServiceConfig::body_read_timeout`]): the client's fault,
    /// so 408, and the connection is closed since the rest may still come.
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    /// No response within the request timeout
    /// ([`crate::AuthServiceConfig::request_timeout`]): ours, so 503.
    #[error("the server did not answer in time")]
    ResponseTimeout,
    /// The server is serving as many connections as it may. For servers in
    /// front of the router (the `identsphere` binary's connection limit).
    #[error("too many connections")]
    Overloaded {
        /// Seconds to wait before retrying (`Retry-After`).
        retry_after_secs: u64,
    },
}

/// The cause of a 5xx, kept out of the body and logged once by the trace layer.
#[derive(Clone, Debug)]
pub struct InternalCause(pub String);

struct Parts {
    status: StatusCode,
    code: &'static str,
    title: &'static str,
    detail: String,
    errors: Option<Vec<FieldError>>,
    retry_after: Option<u64>,
}

impl ApiError {
    fn parts(&self) -> Parts {
        use StatusCode as S;
        match self {
            Self::Core(e) | Self::Basic(e) => core_parts(e),
            Self::BadRequest(m) => p(S::BAD_REQUEST, "bad_request", "Bad request", m.clone()),
            Self::UnsupportedMediaType => p(
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type",
                "send the body as application/json".into(),
            ),
            Self::PayloadTooLarge => p(
                S::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Payload too large",
                self.to_string(),
            ),
            Self::CsrfFailed => p(
                S::FORBIDDEN,
                "csrf_failed",
                "CSRF check failed",
                self.to_string(),
            ),
            Self::NoRoute => p(S::NOT_FOUND, "not_found", "Not found", self.to_string()),
            Self::MethodNotAllowed => p(
                S::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
                self.to_string(),
            ),
            Self::RequestTimeout => p(
                S::REQUEST_TIMEOUT,
                "request_timeout",
                "Request timeout",
                "send the request body faster, then retry".into(),
            ),
            Self::ResponseTimeout => p(
                S::SERVICE_UNAVAILABLE,
                "response_timeout",
                "Response timeout",
                "the server did not answer in time; retry later".into(),
            ),
            Self::Overloaded { retry_after_secs } => Parts {
                retry_after: Some(*retry_after_secs),
                ..p(
                    S::SERVICE_UNAVAILABLE,
                    "overloaded",
                    "Too many connections",
                    "the server is at its connection limit; retry later".into(),
                )
            },
        }
    }
}

/// A problem without field errors or `Retry-After`.
fn p(status: StatusCode, code: &'static str, title: &'static str, detail: String) -> Parts {
    Parts {
        status,
        code,
        title,
        detail,
        errors: None,
        retry_after: None,
    }
}

/// Status, code and text of each domain outcome.
fn core_parts(e: &CoreError) -> Parts {
    use StatusCode as S;
    match e {
        CoreError::InvalidCredentials => p(
            S::UNAUTHORIZED,
            "invalid_credentials",
            "Invalid credentials",
            e.to_string(),
        ),
        CoreError::EmailNotVerified => p(
            S::FORBIDDEN,
            "email_not_verified",
            "Email not verified",
            "verify your email address before signing in".into(),
        ),
        CoreError::Unauthorized => p(
            S::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            e.to_string(),
        ),
        CoreError::RefreshTokenReused => p(
            S::UNAUTHORIZED,
            "refresh_token_reused",
            "Refresh token reused",
            e.to_string(),
        ),
        CoreError::InvalidMfaCode => p(
            S::UNAUTHORIZED,
            "invalid_mfa_code",
            "Invalid verification code",
            e.to_string(),
        ),
        CoreError::InvalidMfaToken => p(
            S::UNAUTHORIZED,
            "invalid_mfa_token",
            "Invalid MFA login",
            e.to_string(),
        ),
        // One code for every refused sign-in, whatever the method.
        CoreError::PasskeyRejected => p(
            S::UNAUTHORIZED,
            "invalid_credentials",
            "Invalid credentials",
            e.to_string(),
        ),
        CoreError::NotConfigured(m) => p(S::NOT_FOUND, "not_found", "Not found", m.clone()),
        CoreError::MfaRequired(m) => p(
            S::FORBIDDEN,
            "mfa_required",
            "Multi-factor authentication required",
            m.clone(),
        ),
        CoreError::StepUpRequired => p(
            S::FORBIDDEN,
            "step_up_required",
            "Recent authentication required",
            e.to_string(),
        ),
        CoreError::InvalidLinkToken => p(
            S::BAD_REQUEST,
            "invalid_token",
            "Invalid or expired link",
            e.to_string(),
        ),
        CoreError::Validation(errors) => Parts {
            errors: Some(errors.clone()),
            ..p(
                S::UNPROCESSABLE_ENTITY,
                "validation_failed",
                "Validation failed",
                "the request has invalid fields".into(),
            )
        },
        CoreError::Forbidden(_) => p(S::FORBIDDEN, "forbidden", "Forbidden", e.to_string()),
        CoreError::NotFound => p(S::NOT_FOUND, "not_found", "Not found", e.to_string()),
        CoreError::Conflict(m) => p(S::CONFLICT, "conflict", "Conflict", m.clone()),
        CoreError::RateLimited { retry_after_secs } => Parts {
            retry_after: Some(*retry_after_secs),
            ..p(
                S::TOO_MANY_REQUESTS,
                "rate_limited",
                "Too many requests",
                "slow down and retry later".into(),
            )
        },
        CoreError::Store(_) | CoreError::Internal(_) => p(
            S::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Internal error",
            "something went wrong on our side".into(),
        ),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let parts = self.parts();
        let problem = Problem {
            kind: format!("urn:identsphere:problem:{}", parts.code),
            title: parts.title,
            status: parts.status.as_u16(),
            detail: parts.detail,
            code: parts.code,
            errors: parts.errors,
        };
        let mut response = (parts.status, axum::Json(problem)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = parts.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if matches!(self, Self::RequestTimeout | Self::Overloaded { .. }) {
            // HTTP/1.1: the rest of a timed-out body may still be arriving,
            // and an over-limit connection must go; hyper closes after
            // writing. (HTTP/2 drops the header itself.)
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if parts.status == StatusCode::UNAUTHORIZED {
            let challenge = match self {
                Self::Basic(_) => "Basic realm=\"identsphere\", charset=\"UTF-8\"",
                _ => "Bearer",
            };
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        if parts.status.is_server_error() {
            response
                .extensions_mut()
                .insert(InternalCause(format!("{self:?}")));
        }
        response
    }
}

/// Handler result.
pub type ApiResult<T> = Result<T, ApiError>;
