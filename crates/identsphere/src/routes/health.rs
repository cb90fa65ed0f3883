//! Liveness and readiness.
use crate::{dto::Health, state::AppState};
use axum::{extract::State, http::StatusCode};
use identsphere_core::jobs::WorkerState;
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
pub async fn healthz() -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok",
        checks: None,
    })
}

/// The database answers. `revocation_feed` says whether revocations from other
/// instances arrive live (`live`), are checked in the database while the feed
/// reconnects (`degraded`), or need no feed (`local`, SQLite). `rate_limits`
/// says where budgets are kept: `redis`, `in_process`, `in_process (redis
/// unreachable)` (still served, per instance), or `off`. `jobs` gives this
/// instance's worker state (`running`, `stopping`, `stopped`) and the jobs
/// waiting (`pending`) and dead-lettered (`dead`) on the whole database.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "Ready", body = Health),
    (status = 503, description = "The database does not answer, or the job worker has stopped", body = Health),
))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, axum::Json<Health>) {
    let identity = &state.identity;
    let db = identity.store().ping().await;
    let feed = match (identity.store().backend(), identity.live_cache().trusted()) {
        ("sqlite", _) => "local",
        (_, true) => "live",
        (_, false) => "degraded",
    };
    let rate_limits = if identity.config().rate_limits.enabled {
        identity.rate_limiter().probe().await;
        identity.rate_limiter().backend()
    } else {
        "off"
    };
    let worker = state.worker.state();
    let jobs = match state.worker.counts().await {
        Ok(counts) => json!({
            "worker": worker.as_str(),
            "pending": counts.iter().map(|c| c.pending).sum::<u64>(),
            "dead": counts.iter().map(|c| c.dead).sum::<u64>(),
        }),
        Err(_) => json!({ "worker": worker.as_str() }),
    };
    let checks = json!({
        "database": if db.is_ok() { "ok" } else { "unavailable" },
        "revocation_feed": feed,
        "rate_limits": rate_limits,
        "jobs": jobs,
    });
    // A worker that stopped is not serving its part: the instance is not ready.
    let db = match (db, worker) {
        (Ok(()), WorkerState::Stopped) => Err("the job worker has stopped".to_owned()),
        (db, _) => db.map_err(|e| e.to_string()),
    };
    match db {
        Ok(()) => (
            StatusCode::OK,
            axum::Json(Health {
                status: "ready",
                checks: Some(checks),
            }),
        ),
        Err(e) => {
            tracing::error!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(Health {
                    status: "unavailable",
                    checks: Some(checks),
                }),
            )
        }
    }
}
