//! Reviews of ended grants: list, show, approve, flag, and export as a
//! verifiable report.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use breakglass_core::api::*;
use serde::Deserialize;

use super::{ApiResult, AppState, Body, P, Q, limit};
use crate::service::Caller;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/reviews", get(list_reviews))
        .route("/v1/reviews/{id}", get(show_review))
        .route("/v1/reviews/{id}/approve", post(approve_review))
        .route("/v1/reviews/{id}/flag", post(flag_review))
        .route("/v1/reviews/{id}/export", post(export_review))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(list_reviews, show_review, approve_review, flag_review, export_review))]
pub(super) struct Doc;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReviewQuery {
    open: Option<bool>,
    overdue: Option<bool>,
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/v1/reviews", params(("open" = Option<bool>, Query), ("overdue" = Option<bool>, Query), ("limit" = Option<u32>, Query)),
    responses((status = 200, body = ReviewList), (status = 401, body = ErrorBody)))]
async fn list_reviews(caller: Caller, State(st): State<AppState>, Q(q): Q<ReviewQuery>) -> ApiResult<Json<ReviewList>> {
    let reviews =
        st.service.reviews(&caller, q.open.unwrap_or(false), q.overdue.unwrap_or(false), limit(q.limit)?).await?;
    Ok(Json(ReviewList { reviews }))
}

#[utoipa::path(get, path = "/v1/reviews/{id}", params(("id" = String, Path, description = "rv_…, or the grant's gr_… id")),
    responses((status = 200, body = ReviewView), (status = 404, body = ErrorBody)))]
async fn show_review(caller: Caller, State(st): State<AppState>, P(id): P<String>) -> ApiResult<Json<ReviewView>> {
    Ok(Json(st.service.review(&caller, &id).await?))
}

#[utoipa::path(post, path = "/v1/reviews/{id}/approve", params(("id" = String, Path)), request_body = ReviewDecision,
    responses((status = 200, body = ReviewView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn approve_review(
    caller: Caller,
    State(st): State<AppState>,
    P(id): P<String>,
    Body(req): Body<ReviewDecision>,
) -> ApiResult<Json<ReviewView>> {
    Ok(Json(st.service.decide_review(&caller, &id, true, &req).await?))
}

#[utoipa::path(post, path = "/v1/reviews/{id}/flag", params(("id" = String, Path)), request_body = ReviewDecision,
    responses((status = 200, body = ReviewView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn flag_review(
    caller: Caller,
    State(st): State<AppState>,
    P(id): P<String>,
    Body(req): Body<ReviewDecision>,
) -> ApiResult<Json<ReviewView>> {
    Ok(Json(st.service.decide_review(&caller, &id, false, &req).await?))
}

/// A verifiable report: logs the export (its manifest), then proves every entry.
#[utoipa::path(post, path = "/v1/reviews/{id}/export", params(("id" = String, Path)),
    responses((status = 200, body = breakglass_core::report::Report), (status = 404, body = ErrorBody)))]
async fn export_review(
    caller: Caller,
    State(st): State<AppState>,
    P(id): P<String>,
) -> ApiResult<Json<breakglass_core::report::Report>> {
    Ok(Json(st.service.export_review(&caller, &id).await?))
}
