//! The four incident receivers (PagerDuty, Opsgenie, Alertmanager, generic
//! signed JSON; each authenticated by its provider's scheme, not a bearer
//! token) and the incidents they opened.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use breakglass_core::api::*;
use serde::Deserialize;

use super::{ApiResult, AppState, P, Q, RawBody, limit};
use crate::service::Caller;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/incidents", get(list_incidents))
        .route("/v1/incidents/pagerduty", post(incident_pagerduty))
        .route("/v1/incidents/opsgenie", post(incident_opsgenie))
        .route("/v1/incidents/alertmanager", post(incident_alertmanager))
        .route("/v1/incidents/generic", post(incident_generic))
        .route("/v1/incidents/{id}", get(show_incident))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(
    list_incidents,
    show_incident,
    incident_pagerduty,
    incident_opsgenie,
    incident_alertmanager,
    incident_generic
))]
pub(super) struct Doc;

fn header<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn receive(
    st: &AppState,
    source: breakglass_core::incident::Source,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> ApiResult<Json<IncidentReceipt>> {
    let delivery = crate::service::incidents::Delivery {
        authorization: header(headers, "authorization"),
        pagerduty_signature: header(headers, "x-pagerduty-signature"),
        breakglass_timestamp: header(headers, "x-breakglass-timestamp"),
        breakglass_signature: header(headers, "x-breakglass-signature"),
    };
    Ok(Json(st.service.receive_incident(source, &delivery, body).await?))
}

/// PagerDuty v3 webhooks, authenticated by `X-PagerDuty-Signature`.
#[utoipa::path(post, path = "/v1/incidents/pagerduty", request_body(content = String, content_type = "application/json"),
    responses((status = 200, body = IncidentReceipt), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn incident_pagerduty(
    State(st): State<AppState>,
    headers: axum::http::HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Json<IncidentReceipt>> {
    receive(&st, breakglass_core::incident::Source::PagerDuty, &headers, &body).await
}

/// Opsgenie outgoing webhooks, authenticated by the configured credential.
#[utoipa::path(post, path = "/v1/incidents/opsgenie", request_body(content = String, content_type = "application/json"),
    responses((status = 200, body = IncidentReceipt), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn incident_opsgenie(
    State(st): State<AppState>,
    headers: axum::http::HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Json<IncidentReceipt>> {
    receive(&st, breakglass_core::incident::Source::Opsgenie, &headers, &body).await
}

/// Prometheus Alertmanager webhooks, authenticated by a bearer token.
#[utoipa::path(post, path = "/v1/incidents/alertmanager", request_body(content = String, content_type = "application/json"),
    responses((status = 200, body = IncidentReceipt), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn incident_alertmanager(
    State(st): State<AppState>,
    headers: axum::http::HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Json<IncidentReceipt>> {
    receive(&st, breakglass_core::incident::Source::Alertmanager, &headers, &body).await
}

/// The generic signed JSON form: `X-Breakglass-Timestamp` and
/// `X-Breakglass-Signature: v1=<HMAC-SHA256 of "<timestamp>.<body>">`.
#[utoipa::path(post, path = "/v1/incidents/generic", request_body(content = String, content_type = "application/json"),
    responses((status = 200, body = IncidentReceipt), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn incident_generic(
    State(st): State<AppState>,
    headers: axum::http::HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Json<IncidentReceipt>> {
    receive(&st, breakglass_core::incident::Source::Generic, &headers, &body).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IncidentQuery {
    open: Option<bool>,
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/v1/incidents", params(("open" = Option<bool>, Query), ("limit" = Option<u32>, Query)),
    responses((status = 200, body = IncidentList), (status = 401, body = ErrorBody)))]
async fn list_incidents(
    caller: Caller,
    State(st): State<AppState>,
    Q(q): Q<IncidentQuery>,
) -> ApiResult<Json<IncidentList>> {
    let incidents = st.service.incidents(&caller, q.open.unwrap_or(false), limit(q.limit)?).await?;
    Ok(Json(IncidentList { incidents: incidents.iter().map(|i| i.view()).collect() }))
}

#[utoipa::path(get, path = "/v1/incidents/{id}", params(("id" = String, Path)),
    responses((status = 200, body = IncidentView), (status = 404, body = ErrorBody)))]
async fn show_incident(caller: Caller, State(st): State<AppState>, P(id): P<String>) -> ApiResult<Json<IncidentView>> {
    Ok(Json(st.service.incident(&caller, &id).await?.view()))
}
