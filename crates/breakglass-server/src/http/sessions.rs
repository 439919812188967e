//! Logging in and out, sessions, who am I, and API tokens.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use breakglass_core::api::*;
use serde::Deserialize;

use super::{ApiResult, AppState, Body, P, Q};
use crate::service::Caller;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/login/challenge", post(login_challenge))
        .route("/v1/login", post(login))
        .route("/v1/logout", post(logout))
        .route("/v1/sessions", get(list_sessions).delete(revoke_sessions_of))
        .route("/v1/sessions/{id}", delete(revoke_session))
        .route("/v1/whoami", get(whoami))
        .route("/v1/tokens", post(create_token).get(list_tokens))
        .route("/v1/tokens/{id}", delete(revoke_token))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(
    login_challenge,
    login,
    logout,
    list_sessions,
    revoke_sessions_of,
    revoke_session,
    whoami,
    create_token,
    list_tokens,
    revoke_token
))]
pub(super) struct Doc;

#[utoipa::path(post, path = "/v1/login/challenge", security(()), request_body = ChallengeRequest,
    responses((status = 200, body = ChallengeResponse), (status = 401, body = ErrorBody)))]
async fn login_challenge(
    State(st): State<AppState>,
    Body(req): Body<ChallengeRequest>,
) -> ApiResult<Json<ChallengeResponse>> {
    Ok(Json(st.service.login_challenge(&req.principal)?))
}

#[utoipa::path(post, path = "/v1/login", security(()), request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, body = ErrorBody)))]
async fn login(State(st): State<AppState>, Body(req): Body<LoginRequest>) -> ApiResult<Json<LoginResponse>> {
    Ok(Json(st.service.login(&req.principal, &req.challenge, &req.signature).await?))
}

#[utoipa::path(post, path = "/v1/logout",
    responses((status = 200, body = SessionsEnded), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn logout(caller: Caller, State(st): State<AppState>) -> ApiResult<Json<SessionsEnded>> {
    Ok(Json(st.service.logout(&caller).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionQuery {
    principal: Option<String>,
    all: Option<bool>,
}

#[utoipa::path(get, path = "/v1/sessions", params(
    ("principal" = Option<String>, Query, description = "admins: one principal's sessions"),
    ("all" = Option<bool>, Query, description = "include ended and expired sessions")),
    responses((status = 200, body = SessionList), (status = 403, body = ErrorBody)))]
async fn list_sessions(
    caller: Caller,
    State(st): State<AppState>,
    Q(q): Q<SessionQuery>,
) -> ApiResult<Json<SessionList>> {
    let sessions = st.service.list_sessions(&caller, q.principal.as_deref(), q.all.unwrap_or(false)).await?;
    Ok(Json(SessionList { sessions }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PrincipalQuery {
    principal: String,
}

#[utoipa::path(delete, path = "/v1/sessions", params(("principal" = String, Query)),
    responses((status = 200, body = SessionsEnded), (status = 403, body = ErrorBody)))]
async fn revoke_sessions_of(
    caller: Caller,
    State(st): State<AppState>,
    Q(q): Q<PrincipalQuery>,
) -> ApiResult<Json<SessionsEnded>> {
    Ok(Json(st.service.revoke_sessions_of(&caller, &q.principal).await?))
}

#[utoipa::path(delete, path = "/v1/sessions/{id}", params(("id" = String, Path)),
    responses((status = 200, body = SessionsEnded), (status = 404, body = ErrorBody)))]
async fn revoke_session(
    caller: Caller,
    State(st): State<AppState>,
    P(id): P<String>,
) -> ApiResult<Json<SessionsEnded>> {
    Ok(Json(st.service.revoke_session(&caller, &id).await?))
}

#[utoipa::path(get, path = "/v1/whoami", responses((status = 200, body = WhoAmI), (status = 401, body = ErrorBody)))]
async fn whoami(caller: Caller, State(st): State<AppState>) -> Json<WhoAmI> {
    Json(st.service.whoami(&caller))
}

#[utoipa::path(post, path = "/v1/tokens", request_body = CreateApiToken,
    responses((status = 201, body = CreatedApiToken), (status = 403, body = ErrorBody)))]
async fn create_token(
    caller: Caller,
    State(st): State<AppState>,
    Body(req): Body<CreateApiToken>,
) -> ApiResult<(StatusCode, Json<CreatedApiToken>)> {
    Ok((StatusCode::CREATED, Json(st.service.create_api_token(Some(&caller), &req).await?)))
}

#[utoipa::path(get, path = "/v1/tokens", responses((status = 200, body = ApiTokenList)))]
async fn list_tokens(caller: Caller, State(st): State<AppState>) -> ApiResult<Json<ApiTokenList>> {
    Ok(Json(ApiTokenList { tokens: st.service.list_api_tokens(&caller).await? }))
}

#[utoipa::path(delete, path = "/v1/tokens/{id}", params(("id" = String, Path)),
    responses((status = 200, body = ApiTokenView), (status = 404, body = ErrorBody)))]
async fn revoke_token(caller: Caller, State(st): State<AppState>, P(id): P<String>) -> ApiResult<Json<ApiTokenView>> {
    Ok(Json(st.service.revoke_api_token(&caller, &id).await?))
}
