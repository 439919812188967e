//! Events hooks and CI steps report (pushes, gate decisions, deploys), and
//! the repositories they report from, with the refs seen in each.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use breakglass_core::api::*;
use serde::Deserialize;

use super::{ApiResult, AppState, Body, Q};
use crate::service::Caller;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/events", post(record_event))
        .route("/v1/repos", post(register_repo).get(list_repos))
        .route("/v1/repos/refs", get(repo_refs))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(record_event, register_repo, list_repos, repo_refs))]
pub(super) struct Doc;

#[utoipa::path(post, path = "/v1/events", request_body = EventRequest,
    responses((status = 200, body = EventRecorded), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn record_event(
    caller: Caller,
    State(st): State<AppState>,
    Body(req): Body<EventRequest>,
) -> ApiResult<Json<EventRecorded>> {
    Ok(Json(st.service.record_event(&caller, &req).await?))
}

#[utoipa::path(post, path = "/v1/repos", request_body = RepoRegistration,
    responses((status = 200, body = RepoRegistration), (status = 400, body = ErrorBody)))]
async fn register_repo(
    caller: Caller,
    State(st): State<AppState>,
    Body(req): Body<RepoRegistration>,
) -> ApiResult<Json<RepoRegistration>> {
    Ok(Json(st.service.register_repo(&caller, &req).await?))
}

#[utoipa::path(get, path = "/v1/repos", responses((status = 200, body = RepoList)))]
async fn list_repos(caller: Caller, State(st): State<AppState>) -> ApiResult<Json<RepoList>> {
    Ok(Json(RepoList { repos: st.service.repos(&caller).await? }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RepoQuery {
    repo: String,
}

#[utoipa::path(get, path = "/v1/repos/refs", params(("repo" = String, Query, description = "the repository's name")),
    responses((status = 200, body = RefList), (status = 404, body = ErrorBody)))]
async fn repo_refs(caller: Caller, State(st): State<AppState>, Q(q): Q<RepoQuery>) -> ApiResult<Json<RefList>> {
    Ok(Json(st.service.repo_refs(&caller, &q.repo).await?))
}
