//! The HTTP API: axum routes, authentication, error mapping, metrics and the
//! OpenAPI document. Handlers are thin: they parse, call the [`Service`], and
//! map its errors to statuses. The routes are listed in docs/api.md.
//!
//! Every endpoint but `/healthz`, `/readyz`, `/.well-known/jwks.json`, the
//! two login endpoints (where the SSH signature is the credential) and the
//! four incident receivers (each authenticated by its provider's scheme,
//! //! see `incidents`) requires a bearer token. Error bodies never carry internal
//! detail; the server's own log does.
//!
//! Security: anyone who reaches the port controls the request line, the
//! headers and the body, and may hold any kind of credential; a CI ID token
//! or a grant token reaches only the routes [`MACHINE_ROUTES`] lists.
//!
//! One file per feature, each with its routes (`routes()`), its handlers
//! next to them, and its part of the OpenAPI document (`Doc`). This file
//! merges them in [`router`] under the layers every route shares, and holds
//! what the handlers share: [`AppState`], the bearer [`Caller`] extractor
//! with its [`MACHINE_ROUTES`] gate, and the extractors that refuse with the
//! API's JSON error ([`Body`], `RawBody`, [`Q`], [`P`]). [`ApiError`] is in `error`.

mod ci;
mod drift;
mod drills;
mod error;
mod events;
mod forges;
mod grants;
mod incidents;
mod log;
mod notifications;
mod openapi;
mod ops;
mod reviews;
mod sessions;
mod stats;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, FromRequestParts, MatchedPath, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;

pub use self::error::ApiError;
use self::error::ApiResult;
pub use self::openapi::openapi;
use crate::service::{Caller, Service};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub service: Arc<Service>,
    pub metrics: Option<PrometheusHandle>,
    /// Lets an admin move the server's clock (`POST /v1/debug/clock`); only
    /// for tests and drills, never on a real server.
    pub test_clock: Option<Arc<crate::OffsetClock>>,
}

/// The router over `state`, with the body limit (bytes).
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    let mut app = Router::new()
        .merge(ops::routes())
        .merge(sessions::routes())
        .merge(grants::routes())
        .merge(events::routes())
        .merge(ci::routes())
        .merge(incidents::routes())
        .merge(notifications::routes())
        .merge(reviews::routes())
        .merge(stats::routes())
        .merge(drift::routes())
        .merge(drills::routes())
        .merge(forges::routes())
        .merge(log::routes());
    if state.test_clock.is_some() {
        app = app.merge(ops::test_clock_routes());
    }
    app.fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(middleware::from_fn(catch_panic))
        .layer(middleware::from_fn(track))
        .with_state(state)
}

/// A handler that panics answers 500 with the API's error body and costs one
/// log line, instead of dropping the connection (and printing a backtrace
/// per request). The handler runs as its own task so that its panic is
/// caught at the task boundary.
pub async fn catch_panic(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched".to_owned(), |p| p.as_str().to_owned());
    match tokio::spawn(next.run(req)).await {
        Ok(res) => res,
        Err(e) => {
            let what = if e.is_panic() { "panicked" } else { "was cancelled" };
            tracing::error!(route, "a request handler {what}; answered 500");
            metrics::counter!("breakglass_http_panics_total").increment(1);
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error; the server's log has one line about it",
            )
            .into_response()
        }
    }
}

/// Counts requests and their latency by route and status.
async fn track(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().to_string();
    let start = Instant::now();
    let res = next.run(req).await;
    // The one place a request's failure is logged: a server fault, with the
    // cause chain its error kept.
    if let Some(error::Fault(chain)) = res.extensions().get::<error::Fault>() {
        tracing::error!(%method, %route, status = res.status().as_u16(), error = %chain, "request failed");
    }
    let status = res.status().as_u16().to_string();
    metrics::counter!("breakglass_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("breakglass_http_request_duration_seconds", "method" => method, "route" => route)
        .record(start.elapsed().as_secs_f64());
    res
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint; see /v1/openapi.json")
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(unauthorized(
                "authentication required: send Authorization: Bearer <token> (run 'breakglass login', or use an API token)",
            ));
        };
        let value = value.to_str().map_err(|_| unauthorized("the Authorization header is not ASCII"))?;
        let Some(token) = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")) else {
            return Err(unauthorized("the Authorization header must be 'Bearer <token>'"));
        };
        let caller = state.service.authenticate(token.trim()).await?;
        let route = parts.extensions.get::<MatchedPath>().map(|p| p.as_str());
        if !may_use(&caller, route) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("a {} credential may use only {}", caller.kind.as_str(), MACHINE_ROUTES.join(", ")),
            ));
        }
        Ok(caller)
    }
}

/// The only routes a CI job's ID token or a grant token may use: who am I,
/// its grant's status, its pipeline's status, and reporting its own events.
/// Everything else is refused before any handler runs (fail closed: a new
/// route is closed to them until it is listed here).
const MACHINE_ROUTES: &[&str] = &["/v1/whoami", "/v1/grants/{id}/status", "/v1/ci/status", "/v1/events"];

fn may_use(caller: &Caller, route: Option<&str>) -> bool {
    use crate::service::CredentialKind;
    match caller.kind {
        CredentialKind::CiOidc | CredentialKind::GrantToken => route.is_some_and(|r| MACHINE_ROUTES.contains(&r)),
        CredentialKind::Session | CredentialKind::ApiToken | CredentialKind::System => true,
    }
}

/// JSON bodies with errors in our shape (axum's own rejections are plain text).
pub struct Body<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for Body<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(rejection) => Err(refused_body(rejection.status(), &rejection.body_text())),
        }
    }
}

/// A body as raw bytes, for the incident receivers (which authenticate the
/// bytes before they parse them), with errors in our shape: without it, a
/// body over the limit got axum's plain-text 413.
struct RawBody(axum::body::Bytes);

impl<S> axum::extract::FromRequest<S> for RawBody
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::body::Bytes::from_request(req, state).await {
            Ok(bytes) => Ok(RawBody(bytes)),
            Err(rejection) => Err(refused_body(rejection.status(), &rejection.body_text())),
        }
    }
}

/// A body axum refused (`status`, and its plain-text reason): too large, or
/// else a bad request.
fn refused_body(status: StatusCode, reason: &str) -> ApiError {
    let code = if status == StatusCode::PAYLOAD_TOO_LARGE { "payload_too_large" } else { "bad_request" };
    let status = if status == StatusCode::PAYLOAD_TOO_LARGE { status } else { StatusCode::BAD_REQUEST };
    ApiError::new(status, code, format!("invalid request body: {reason}"))
}

/// A query string, rejected with the API's JSON error (axum's own
/// rejection is plain text).
pub struct Q<T>(pub T);

impl<S, T> FromRequestParts<S> for Q<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(Q(v)),
            Err(e) => Err(ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text())),
        }
    }
}

/// Path parameters, rejected with the API's JSON error.
pub struct P<T>(pub T);

impl<S, T> FromRequestParts<S> for P<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(P(v)),
            Err(e) => Err(ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text())),
        }
    }
}

/// The most items one list call returns.
pub const MAX_LIMIT: u32 = 1000;

/// A list's `limit`: 100 when absent, else 1 to [`MAX_LIMIT`].
fn limit(given: Option<u32>) -> ApiResult<u32> {
    match given {
        None => Ok(100),
        Some(n @ 1..=MAX_LIMIT) => Ok(n),
        Some(n) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("invalid limit {n}: expected 1 to {MAX_LIMIT}"),
        )),
    }
}
