//! Hosted forges: the managed repositories' protection and bypass holders,
//! and installing the protection breakglass owns.

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use breakglass_core::api::*;

use super::{ApiResult, AppState, Body, P, RawBody};
use crate::service::Caller;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/v1/forges", get(forge_status)).route("/v1/forges/install", post(install)).route(
        "/v1/forges/{forge}/webhook",
        // A push's payload is larger than any other request.
        post(webhook).layer(DefaultBodyLimit::max(breakglass_core::forge::MAX_BODY_BYTES)),
    )
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(forge_status, install, webhook), components(schemas(ForgeWebhookReceipt)))]
pub(super) struct Doc;

/// A forge's push webhook, authenticated by its signature (GitHub:
/// `X-Hub-Signature-256`) before anything else is read; recorded once per
/// delivery id.
#[utoipa::path(post, path = "/v1/forges/{forge}/webhook", params(("forge" = String, Path)),
    request_body(content = String, content_type = "application/json"),
    responses((status = 200, body = ForgeWebhookReceipt), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn webhook(
    State(st): State<AppState>,
    P(forge): P<String>,
    headers: axum::http::HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Json<ForgeWebhookReceipt>> {
    let pairs: Vec<(String, String)> =
        headers.iter().filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_owned(), v.to_owned()))).collect();
    Ok(Json(st.service.receive_forge_webhook(&forge, &pairs, &body).await?))
}

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
