//! The audit log: its latest checkpoint, one entry, and consistency proofs.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use breakglass_core::api::*;
use serde::Deserialize;

use super::{ApiError, ApiResult, AppState, P, Q};
use crate::service::{Caller, ServiceError};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/log/checkpoint", get(checkpoint))
        .route("/v1/log/entries/{index}", get(entry))
        .route("/v1/log/consistency", get(consistency))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(checkpoint, entry, consistency))]
pub(super) struct Doc;

#[utoipa::path(get, path = "/v1/log/checkpoint", responses((status = 200, body = CheckpointView)))]
async fn checkpoint(_caller: Caller, State(st): State<AppState>) -> ApiResult<Json<CheckpointView>> {
    use base64::Engine as _;
    let Some(cp) = st.service.store().head().await.map_err(ServiceError::from)? else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", "the log is empty"));
    };
    Ok(Json(CheckpointView {
        size: cp.size,
        root: base64::engine::general_purpose::STANDARD.encode(cp.root.0),
        note: cp.note,
    }))
}

#[utoipa::path(get, path = "/v1/log/entries/{index}", params(("index" = u64, Path)),
    responses((status = 200, body = EntryView), (status = 404, body = ErrorBody)))]
async fn entry(_caller: Caller, State(st): State<AppState>, P(index): P<u64>) -> ApiResult<Json<EntryView>> {
    // Bounded by the log's size before the store sees it (indexes are i64 there).
    let size = st.service.store().head_state().await.map_err(ServiceError::from)?.size;
    if index >= size {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no log entry {index} (the log has {size})"),
        ));
    }
    let recs = st.service.store().entries(index, index.saturating_add(1)).await.map_err(ServiceError::from)?;
    let Some(rec) = recs.into_iter().next() else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no log entry {index}")));
    };
    let entry = serde_json::from_slice(&rec.data)
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "a stored entry is unreadable"))?;
    Ok(Json(EntryView { index, entry }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsistencyQuery {
    old: u64,
}

/// A consistency proof from an earlier size to the latest checkpoint.
#[utoipa::path(get, path = "/v1/log/consistency", params(("old" = u64, Query)),
    responses((status = 200, body = ConsistencyView), (status = 400, body = ErrorBody)))]
async fn consistency(
    _caller: Caller,
    State(st): State<AppState>,
    Q(q): Q<ConsistencyQuery>,
) -> ApiResult<Json<ConsistencyView>> {
    let reader = st.service.ledger().reader();
    let head = reader.head().await.map_err(|e| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", format!("cannot read the log: {e}"))
    })?;
    if q.old > head.size {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("old size {} is larger than the log ({})", q.old, head.size),
        ));
    }
    let proof = reader
        .prove_consistency(q.old, head.size)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", format!("cannot prove: {e}")))?;
    Ok(Json(ConsistencyView {
        old: q.old,
        new: head.size,
        proof: proof.iter().map(|h| h.to_base64()).collect(),
        checkpoint: head.note,
    }))
}
