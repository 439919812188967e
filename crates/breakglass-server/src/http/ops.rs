//! The server's own endpoints: health and readiness, Prometheus metrics,
//! the OpenAPI document, policy reload, and the test clock (only on a
//! server started for tests or drills).

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use breakglass_core::api::{ErrorBody, PolicyReloaded};
use serde::Deserialize;

use super::{ApiError, ApiResult, AppState, Body, openapi};
use crate::service::Caller;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/v1/openapi.json", get(openapi_json))
        .route("/v1/policy/reload", post(reload_policy))
}

/// `POST /v1/debug/clock`, routed only when the state has a test clock.
pub(super) fn test_clock_routes() -> Router<AppState> {
    Router::new().route("/v1/debug/clock", post(advance_clock))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(healthz, readyz, reload_policy))]
pub(super) struct Doc;

#[utoipa::path(get, path = "/healthz", security(()), responses((status = 200, description = "The process is up")))]
async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

#[utoipa::path(get, path = "/readyz", security(()), responses(
    (status = 200, description = "The database answers and the log accepts appends"),
    (status = 503, description = "Not ready", body = ErrorBody)))]
async fn readyz(State(st): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    match st.service.store().head_state().await {
        Ok(h) => Ok(Json(serde_json::json!({ "status": "ready", "log_size": h.size }))),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: the database does not answer");
            Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the database does not answer"))
        }
    }
}

async fn metrics_text(_caller: Caller, State(st): State<AppState>) -> ApiResult<Response> {
    let counts = st.service.grant_counts().await?;
    for (state, n) in counts {
        metrics::gauge!("breakglass_grants", "state" => state).set(n as f64);
    }
    crate::service::stats::export_metrics(&st.service.stats(&_caller, None).await?);
    let text = st.metrics.as_ref().map(|h| h.render()).unwrap_or_default();
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

async fn openapi_json(_caller: Caller) -> Json<utoipa::openapi::OpenApi> {
    Json(openapi())
}

#[utoipa::path(post, path = "/v1/policy/reload",
    responses((status = 200, body = PolicyReloaded), (status = 422, body = ErrorBody)))]
async fn reload_policy(caller: Caller, State(st): State<AppState>) -> ApiResult<Json<PolicyReloaded>> {
    if !caller.is_admin() {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "only an admin API token may reload the policy"));
    }
    Ok(Json(st.service.reload_by(&caller).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockAdvance {
    advance_ms: i64,
}

async fn advance_clock(
    caller: Caller,
    State(st): State<AppState>,
    Body(req): Body<ClockAdvance>,
) -> ApiResult<Json<serde_json::Value>> {
    if !caller.is_admin() {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "only an admin may move the test clock"));
    }
    let Some(clock) = &st.test_clock else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", "no test clock"));
    };
    if req.advance_ms < 0 {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "bad_request", "the clock only moves forward"));
    }
    clock.advance(req.advance_ms);
    // What fell due is ended before the answer, so a test that moves the
    // clock sees the result at once instead of waiting for the timer.
    st.service.expire_due().await?;
    st.service.wake_timer();
    st.service.wake_outbox();
    let now = breakglass_core::time::Clock::now(clock.as_ref());
    Ok(Json(serde_json::json!({ "now": now })))
}
