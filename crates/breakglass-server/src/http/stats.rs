//! Friction figures over grants and reviews.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use breakglass_core::api::*;
use breakglass_core::time::Timestamp;
use serde::Deserialize;

use super::{ApiError, ApiResult, AppState, Q};
use crate::service::Caller;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/v1/stats", get(stats))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(stats))]
pub(super) struct Doc;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatsQuery {
    /// RFC 3339: only grants requested since.
    since: Option<String>,
}

/// Friction figures: request-to-active times, grant durations, who breaks glass where, reviews.
#[utoipa::path(get, path = "/v1/stats", params(("since" = Option<String>, Query, description = "RFC 3339")),
    responses((status = 200, body = StatsView), (status = 400, body = ErrorBody)))]
async fn stats(caller: Caller, State(st): State<AppState>, Q(q): Q<StatsQuery>) -> ApiResult<Json<StatsView>> {
    let since = match q.since.as_deref() {
        None => None,
        Some(s) => Some(
            Timestamp::parse(s)
                .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", format!("since: {e}")))?,
        ),
    };
    Ok(Json(st.service.stats(&caller, since).await?))
}
