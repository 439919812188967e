//! Grants: request, list, show, status, approve, deny, revoke, extend, the
//! grant token and the JWKS that verifies it, and the check hooks and CI
//! steps ask.

use std::time::Instant;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use breakglass_core::api::*;
use serde::Deserialize;

use super::{ApiResult, AppState, Body, P, Q, limit};
use crate::service::Caller;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route("/v1/grants", post(request_grant).get(list_grants))
        .route("/v1/grants/{id}", get(show_grant))
        .route("/v1/grants/{id}/status", get(grant_status))
        .route("/v1/grants/{id}/approve", post(approve))
        .route("/v1/grants/{id}/deny", post(deny))
        .route("/v1/grants/{id}/revoke", post(revoke))
        .route("/v1/grants/{id}/extend", post(extend))
        .route("/v1/grants/{id}/token", post(grant_token))
        .route("/v1/check", get(check))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(
    jwks,
    request_grant,
    list_grants,
    show_grant,
    grant_status,
    approve,
    deny,
    revoke,
    extend,
    grant_token,
    check
))]
pub(super) struct Doc;

#[utoipa::path(get, path = "/.well-known/jwks.json", security(()), responses((status = 200, description = "JWKS of the grant-token keys")))]
async fn jwks(State(st): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], st.service.jwks()).into_response()
}

#[utoipa::path(post, path = "/v1/grants", request_body = GrantRequest, responses(
    (status = 201, body = GrantView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn request_grant(
    caller: Caller,
    State(st): State<AppState>,
    Body(req): Body<GrantRequest>,
) -> ApiResult<(StatusCode, Json<GrantView>)> {
    let start = Instant::now();
    let mut v = st.service.request(&caller, &req).await?;
    // The requester hears whether the forge bypass is live (bounded wait).
    v.forge = st.service.forge_bypasses(&v.id, v.effective).await?;
    if v.effective {
        metrics::histogram!("breakglass_grant_request_to_active_seconds").record(start.elapsed().as_secs_f64());
    }
    Ok((StatusCode::CREATED, Json(v)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    state: Option<String>,
    principal: Option<String>,
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/v1/grants", params(
    ("state" = Option<String>, Query, description = "pending, active, expired, revoked, denied or lapsed"),
    ("principal" = Option<String>, Query), ("limit" = Option<u32>, Query)),
    responses((status = 200, body = GrantList)))]
async fn list_grants(caller: Caller, State(st): State<AppState>, Q(q): Q<ListQuery>) -> ApiResult<Json<GrantList>> {
    let grants = st.service.list(&caller, q.state.as_deref(), q.principal.as_deref(), limit(q.limit)?).await?;
    Ok(Json(GrantList { grants }))
}

#[utoipa::path(get, path = "/v1/grants/{id}", params(("id" = String, Path)),
    responses((status = 200, body = GrantView), (status = 404, body = ErrorBody)))]
async fn show_grant(caller: Caller, State(st): State<AppState>, P(id): P<String>) -> ApiResult<Json<GrantView>> {
    let mut v = st.service.show(&caller, &id).await?;
    v.forge = st.service.forge_bypasses(&v.id, false).await?;
    Ok(Json(v))
}

#[utoipa::path(get, path = "/v1/grants/{id}/status", params(("id" = String, Path)),
    responses((status = 200, body = GrantStatus), (status = 404, body = ErrorBody)))]
async fn grant_status(caller: Caller, State(st): State<AppState>, P(id): P<String>) -> ApiResult<Json<GrantStatus>> {
    Ok(Json(st.service.status(&caller, &id).await?))
}

#[utoipa::path(post, path = "/v1/grants/{id}/approve", params(("id" = String, Path)), request_body = ApproveRequest,
    responses((status = 200, body = GrantView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn approve(
    caller: Caller,
    State(st): State<AppState>,
    P(id): P<String>,
    Body(req): Body<ApproveRequest>,
) -> ApiResult<Json<GrantView>> {
    let mut v = st.service.approve(&caller, &id, req.comment.as_deref()).await?;
    v.forge = st.service.forge_bypasses(&v.id, v.effective).await?;
    Ok(Json(v))
}

#[utoipa::path(post, path = "/v1/grants/{id}/deny", params(("id" = String, Path)), request_body = ReasonRequest,
    responses((status = 200, body = GrantView), (status = 403, body = ErrorBody)))]
async fn deny(
    caller: Caller,
    State(st): State<AppState>,
    P(id): P<String>,
    Body(req): Body<ReasonRequest>,
) -> ApiResult<Json<GrantView>> {
    Ok(Json(st.service.deny(&caller, &id, &req.reason).await?))
}

#[utoipa::path(post, path = "/v1/grants/{id}/revoke", params(("id" = String, Path)), request_body = ReasonRequest,
    responses((status = 200, body = GrantView), (status = 403, body = ErrorBody)))]
async fn revoke(
    caller: Caller,
    State(st): State<AppState>,
    P(id): P<String>,
    Body(req): Body<ReasonRequest>,
) -> ApiResult<Json<GrantView>> {
    let mut v = st.service.revoke(&caller, &id, &req.reason).await?;
    v.forge = st.service.forge_bypasses(&v.id, false).await?;
    Ok(Json(v))
}

#[utoipa::path(post, path = "/v1/grants/{id}/extend", params(("id" = String, Path)), request_body = ExtendRequest,
    responses((status = 200, body = GrantView), (status = 400, body = ErrorBody)))]
async fn extend(
    caller: Caller,
    State(st): State<AppState>,
    P(id): P<String>,
    Body(req): Body<ExtendRequest>,
) -> ApiResult<Json<GrantView>> {
    Ok(Json(st.service.extend(&caller, &id, &req.by, &req.reason).await?))
}

#[utoipa::path(post, path = "/v1/grants/{id}/token", params(("id" = String, Path)),
    responses((status = 200, body = TokenResponse), (status = 409, body = ErrorBody)))]
async fn grant_token(caller: Caller, State(st): State<AppState>, P(id): P<String>) -> ApiResult<Json<TokenResponse>> {
    Ok(Json(st.service.token(&caller, &id).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckQuery {
    principal: String,
    scope: String,
    capability: String,
}

#[utoipa::path(get, path = "/v1/check", params(("principal" = String, Query), ("scope" = String, Query), ("capability" = String, Query)),
    responses((status = 200, body = CheckResponse)))]
async fn check(caller: Caller, State(st): State<AppState>, Q(q): Q<CheckQuery>) -> ApiResult<Json<CheckResponse>> {
    Ok(Json(st.service.check(&caller, &q.principal, &q.scope, &q.capability).await?))
}
