//! A pipeline's status for a CI step: may this stage run, and under which grant.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use breakglass_core::api::*;
use serde::Deserialize;

use super::{ApiResult, AppState, Q};
use crate::service::Caller;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/v1/ci/status", get(ci_status))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(ci_status))]
pub(super) struct Doc;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CiQuery {
    scope: String,
    gate: Option<String>,
    principal: Option<String>,
}

#[utoipa::path(get, path = "/v1/ci/status", params(
    ("scope" = String, Query, description = "pipeline:<project>/<stage>[@<environment>]"),
    ("gate" = Option<String>, Query), ("principal" = Option<String>, Query, description = "service tokens only")),
    responses((status = 200, body = CiStatus), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn ci_status(caller: Caller, State(st): State<AppState>, Q(q): Q<CiQuery>) -> ApiResult<Json<CiStatus>> {
    Ok(Json(st.service.ci_status(&caller, &q.scope, q.principal.as_deref(), q.gate.as_deref()).await?))
}
