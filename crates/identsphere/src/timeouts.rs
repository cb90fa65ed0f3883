//! Deadlines that travel with the router: one for the whole request, one for
//! its body. A slow client or a stalled dependency (database, mail relay)
//! must not hold a connection and its task forever. They live in the library
//! so that hosts mounting [`crate::AuthService::router`] in their own server
//! get them too; the `identsphere` binary adds the connection-level ones
//! (header read, idle keep-alive, connection limit) in front.
use crate::error::ApiError;
use axum::{
    body::{Body, Bytes, HttpBody},
    extract::{Request, State},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    Router,
};
use http_body::{Frame, SizeHint};
use std::{
    future::Future,
    pin::Pin,
    task::{ready, Context, Poll},
    time::Duration,
};
use tokio::time::{Instant, Sleep};

/// The two deadlines, from [`crate::AuthServiceConfig`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timeouts {
    pub(crate) request: Duration,
    pub(crate) body_read: Duration,
}

/// Wraps every route of `router` (fallbacks included) in both deadlines.
pub(crate) fn apply<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    timeouts: Timeouts,
) -> Router<S> {
    router
        .layer(middleware::map_request_with_state(
            timeouts.body_read,
            deadline_body,
        ))
        .layer(middleware::from_fn_with_state(
            timeouts.request,
            deadline_response,
        ))
}

/// Answers `503` `response_timeout` when the inner service takes too long.
/// Dropping its future cancels the handler at an await point; database
/// transactions roll back when dropped.
async fn deadline_response(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::ResponseTimeout.into_response(),
    }
}

/// Gives the body a deadline counted from now, when the headers are in. With
/// the body size limit this is a minimum rate, and it is simpler to reason
/// about than a rate with a grace period: a legitimate client sends 64 KiB in
/// far less than 10 s, a client dripping a byte at a time never finishes.
async fn deadline_body(State(limit): State<Duration>, req: Request) -> Request {
    if req.body().is_end_stream() {
        return req; // nothing to wait for (most GETs): no allocation
    }
    let deadline = Instant::now() + limit; // limit ≤ 1 h (validated): no overflow
    req.map(|inner| {
        Body::new(DeadlineBody {
            inner,
            deadline,
            sleep: None,
        })
    })
}

/// The error a body yields once its deadline has passed; the JSON extractors
/// find it in the rejection's error chain and answer 408.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub(crate) struct BodyTimedOut;

/// Whether `error`, or anything in its source chain, is [`BodyTimedOut`].
pub(crate) fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.is::<BodyTimedOut>() {
            return true;
        }
        next = e.source();
    }
    false
}

struct DeadlineBody {
    inner: Body,
    deadline: Instant,
    /// Made at the first wait, so a body already buffered costs no timer.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        // Data that has arrived is taken even past the deadline: only waiting
        // is refused.
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        ready!(sleep.as_mut().poll(cx));
        Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::extract::Json;
    use axum::{http::StatusCode, routing::post};
    use futures::StreamExt as _;
    use tower::ServiceExt as _;

    const TIMEOUTS: Timeouts = Timeouts {
        request: Duration::from_secs(5),
        body_read: Duration::from_secs(2),
    };

    fn app() -> Router {
        let echo = |Json(v): Json<serde_json::Value>| async move { axum::Json(v) };
        let slow = || async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            "never"
        };
        apply(
            Router::new()
                .route("/echo", post(echo))
                .route("/slow", post(slow)),
            TIMEOUTS,
        )
    }

    /// A JSON body whose first bytes come at once and whose end never comes.
    fn stalled_body() -> Body {
        let first = futures::stream::once(async { Ok::<_, std::io::Error>(Bytes::from("{\"a\"")) });
        Body::from_stream(first.chain(futures::stream::pending()))
    }

    fn post_json(path: &str, body: Body) -> Request {
        Request::post(path)
            .header("content-type", "application/json")
            .body(body)
            .unwrap()
    }

    async fn problem(response: Response) -> (StatusCode, serde_json::Value, Option<String>) {
        let status = response.status();
        let connection = response
            .headers()
            .get("connection")
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap(), connection)
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_is_a_408_at_its_deadline() {
        let started = Instant::now();
        let response = app()
            .oneshot(post_json("/echo", stalled_body()))
            .await
            .unwrap();
        assert_eq!(started.elapsed(), TIMEOUTS.body_read);
        let (status, body, connection) = problem(response).await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
        assert_eq!(body["code"], "request_timeout");
        assert_eq!(connection.as_deref(), Some("close"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_handler_is_a_503_at_the_request_deadline() {
        let started = Instant::now();
        let response = app()
            .oneshot(post_json("/slow", Body::empty()))
            .await
            .unwrap();
        assert_eq!(started.elapsed(), TIMEOUTS.request);
        let (status, body, _) = problem(response).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["code"], "response_timeout");
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_arrived_in_time_is_read() {
        let response = app()
            .oneshot(post_json("/echo", Body::from("{\"a\":1}")))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    #[test]
    fn the_timeout_is_found_through_wrapping_errors() {
        let wrapped = axum::Error::new(axum::Error::new(BodyTimedOut));
        assert!(is_body_timeout(&wrapped));
        assert!(!is_body_timeout(&axum::Error::new(std::io::Error::other(
            "x"
        ))));
    }
}
