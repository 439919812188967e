//! Live drills: a drill's report recorded, and the stored drills listed.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use breakglass_core::api::*;
use serde::Deserialize;

use super::{ApiResult, AppState, Body, Q, limit};
use crate::service::Caller;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/v1/drills", post(record_drill).get(list_drills))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(record_drill, list_drills))]
pub(super) struct Doc;

#[utoipa::path(post, path = "/v1/drills", request_body = DrillReport,
    responses((status = 200, body = DrillRecord), (status = 400, body = ErrorBody)))]
async fn record_drill(
    caller: Caller,
    State(st): State<AppState>,
    Body(req): Body<DrillReport>,
) -> ApiResult<Json<DrillRecord>> {
    Ok(Json(st.service.record_drill(&caller, &req).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitQuery {
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/v1/drills", params(("limit" = Option<u32>, Query)),
    responses((status = 200, body = DrillList)))]
async fn list_drills(caller: Caller, State(st): State<AppState>, Q(q): Q<LimitQuery>) -> ApiResult<Json<DrillList>> {
    Ok(Json(st.service.drills(&caller, limit(q.limit)?).await?))
}
