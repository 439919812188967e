//! Drift the server sees for itself, read or checked now (findings recorded).

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use breakglass_core::api::*;

use super::{ApiResult, AppState};
use crate::service::Caller;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/v1/drift", get(drift)).route("/v1/drift/check", post(drift_check))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(drift, drift_check))]
pub(super) struct Doc;

#[utoipa::path(get, path = "/v1/drift", responses((status = 200, body = DriftReport), (status = 403, body = ErrorBody)))]
async fn drift(caller: Caller, State(st): State<AppState>) -> ApiResult<Json<DriftReport>> {
    Ok(Json(st.service.drift(&caller).await?))
}

/// Drift the server sees for itself: grants lagging or contradicting their log, standing backdoors in policy.
#[utoipa::path(post, path = "/v1/drift/check", responses((status = 200, body = DriftCheck), (status = 403, body = ErrorBody)))]
async fn drift_check(caller: Caller, State(st): State<AppState>) -> ApiResult<Json<DriftCheck>> {
    Ok(Json(st.service.drift_check(&caller).await?))
}
