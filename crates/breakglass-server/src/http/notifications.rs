//! The notification outbox: list deliveries, retry one.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use breakglass_core::api::*;
use serde::Deserialize;

use super::{ApiResult, AppState, P, Q, limit};
use crate::service::Caller;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/notifications", get(list_notifications))
        .route("/v1/notifications/{id}/retry", post(retry_notification))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(list_notifications, retry_notification))]
pub(super) struct Doc;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NotificationQuery {
    status: Option<String>,
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/v1/notifications", params(("status" = Option<String>, Query), ("limit" = Option<u32>, Query)),
    responses((status = 200, body = NotificationList), (status = 403, body = ErrorBody)))]
async fn list_notifications(
    caller: Caller,
    State(st): State<AppState>,
    Q(q): Q<NotificationQuery>,
) -> ApiResult<Json<NotificationList>> {
    let notifications = st.service.notifications(&caller, q.status.as_deref(), limit(q.limit)?).await?;
    Ok(Json(NotificationList { notifications }))
}

#[utoipa::path(post, path = "/v1/notifications/{id}/retry", params(("id" = String, Path)),
    responses((status = 200, body = NotificationView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn retry_notification(
    caller: Caller,
    State(st): State<AppState>,
    P(id): P<String>,
) -> ApiResult<Json<NotificationView>> {
    Ok(Json(st.service.retry_notification(&caller, &id).await?))
}
