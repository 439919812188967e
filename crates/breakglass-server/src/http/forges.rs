//! Hosted forges: the managed repositories' protection and bypass holders,
//! and installing the protection breakglass owns.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use breakglass_core::api::*;

use super::{ApiResult, AppState, Body};
use crate::service::Caller;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/v1/forges", get(forge_status)).route("/v1/forges/install", post(install))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(forge_status, install))]
pub(super) struct Doc;

#[utoipa::path(get, path = "/v1/forges", responses((status = 200, body = ForgeStatusList)))]
async fn forge_status(caller: Caller, State(st): State<AppState>) -> ApiResult<Json<ForgeStatusList>> {
    Ok(Json(ForgeStatusList { repos: st.service.forge_status(&caller).await? }))
}

#[utoipa::path(post, path = "/v1/forges/install", request_body = ForgeInstall,
    responses((status = 200, body = ForgeRepoStatus), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn install(
    caller: Caller,
    State(st): State<AppState>,
    Body(req): Body<ForgeInstall>,
) -> ApiResult<Json<ForgeRepoStatus>> {
    Ok(Json(st.service.install_forge_repo(&caller, &req.forge, &req.repo).await?))
}
