//! The HTTP API: axum routes, authentication, error mapping, metrics and the
//! OpenAPI document. Handlers are thin: they parse, call the [`Service`], and
//! map its errors to statuses. The routes are listed in docs/api.md.
//!
//! Every endpoint but `/healthz`, `/readyz`, `/.well-known/jwks.json`, the
//! two login endpoints (where the SSH signature is the credential) and the
//! four incident receivers (each authenticated by its provider's scheme,
//! see `incidents`) requires a bearer token. Error bodies never carry internal detail; the
//! server's own log does.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, FromRequestParts, MatchedPath, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use breakglass_core::api::*;
use breakglass_core::grant::{Approval, Extension, GrantState};
use breakglass_core::time::Timestamp;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use utoipa::OpenApi;

use crate::service::{Caller, Service, ServiceError};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub service: Arc<Service>,
    pub metrics: Option<PrometheusHandle>,
    /// Lets an admin move the server's clock (`POST /v1/debug/clock`); only
    /// for tests and drills, never on a real server.
    pub test_clock: Option<Arc<crate::OffsetClock>>,
}

/// An API error: a status and the JSON body of [`ErrorBody`].
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorBody { error: ErrorDetail { code: code.into(), message: message.into(), reasons: Vec::new() } },
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> ApiError {
        let (status, code) = match &e {
            ServiceError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ServiceError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ServiceError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ServiceError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ServiceError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ServiceError::PolicyDenied { .. } => (StatusCode::FORBIDDEN, "policy_denied"),
            ServiceError::InvalidPolicy { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_policy"),
            ServiceError::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable"),
            ServiceError::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ServiceError::Internal { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        let reasons = match &e {
            ServiceError::PolicyDenied { reasons, .. } => reasons.clone(),
            ServiceError::InvalidPolicy { problems, .. } => problems.clone(),
            _ => Vec::new(),
        };
        let mut err = ApiError::new(status, code, e.to_string());
        err.body.error.reasons = reasons;
        err
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (self.status, Json(self.body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

type ApiResult<T> = Result<T, ApiError>;

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
            Err(rejection) => {
                let status = rejection.status();
                let code = if status == StatusCode::PAYLOAD_TOO_LARGE { "payload_too_large" } else { "bad_request" };
                let status = if status == StatusCode::PAYLOAD_TOO_LARGE { status } else { StatusCode::BAD_REQUEST };
                Err(ApiError::new(status, code, format!("invalid request body: {}", rejection.body_text())))
            }
        }
    }
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

#[derive(OpenApi)]
#[openapi(
    info(title = "breakglass", description = "Emergency access for Git and CI/CD: time-bound, policy-approved grants, recorded in a tamper-evident log."),
    paths(
        healthz, readyz, jwks, login_challenge, login, logout, list_sessions, revoke_sessions_of, revoke_session, whoami, request_grant, list_grants, show_grant, grant_status,
        approve, deny, revoke, extend, grant_token, check, create_token, list_tokens, revoke_token, reload_policy,
        checkpoint, entry, record_event, register_repo, list_repos, repo_refs, ci_status, list_incidents, show_incident,
        incident_pagerduty, incident_opsgenie, incident_alertmanager, incident_generic, list_notifications,
        retry_notification, list_reviews, show_review, approve_review, flag_review, export_review, stats, drift, drift_check, record_drill, list_drills, consistency
    ),
    components(schemas(
        StatsView, DurationStats, CountBy, DriftFinding, DriftReport, DriftCheck, DrillReport, DrillStep, DrillRecord, DrillList, ConsistencyView, breakglass_core::report::Report, breakglass_core::report::ProvenEntry, TimelineEntry, ReviewView, ReviewList, ReviewDecision, IncidentResponder, IncidentView, IncidentList, IncidentReceipt, NotificationView, NotificationList,
        SessionView, SessionList, SessionsEnded, ErrorBody, ErrorDetail, ChallengeRequest, ChallengeResponse, LoginRequest, LoginResponse, WhoAmI,
        GrantRequest, ReasonRequest, ApproveRequest, ExtendRequest, GrantView, GrantList, GrantStatus,
        CheckResponse, TokenResponse, CreateApiToken, ApiTokenView, CreatedApiToken, ApiTokenList,
        PolicyReloaded, CheckpointView, EntryView, GrantState, Approval, Extension, Timestamp, EventRequest,
        EventRecorded, RepoRegistration, RepoList, RefRecord, RefList, CiStatus, CiGrant, GateDecision
    )),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// The OpenAPI document, as served at `/v1/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The router over `state`, with the body limit (bytes).
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    let mut v1 = Router::new()
        .route("/login/challenge", post(login_challenge))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/sessions", get(list_sessions).delete(revoke_sessions_of))
        .route("/sessions/{id}", axum::routing::delete(revoke_session))
        .route("/whoami", get(whoami))
        .route("/grants", post(request_grant).get(list_grants))
        .route("/grants/{id}", get(show_grant))
        .route("/grants/{id}/status", get(grant_status))
        .route("/grants/{id}/approve", post(approve))
        .route("/grants/{id}/deny", post(deny))
        .route("/grants/{id}/revoke", post(revoke))
        .route("/grants/{id}/extend", post(extend))
        .route("/grants/{id}/token", post(grant_token))
        .route("/check", get(check))
        .route("/tokens", post(create_token).get(list_tokens))
        .route("/tokens/{id}", axum::routing::delete(revoke_token))
        .route("/policy/reload", post(reload_policy))
        .route("/events", post(record_event))
        .route("/ci/status", get(ci_status))
        .route("/repos", post(register_repo).get(list_repos))
        .route("/repos/refs", get(repo_refs))
        .route("/incidents", get(list_incidents))
        .route("/incidents/pagerduty", post(incident_pagerduty))
        .route("/incidents/opsgenie", post(incident_opsgenie))
        .route("/incidents/alertmanager", post(incident_alertmanager))
        .route("/incidents/generic", post(incident_generic))
        .route("/incidents/{id}", get(show_incident))
        .route("/reviews", get(list_reviews))
        .route("/reviews/{id}", get(show_review))
        .route("/reviews/{id}/approve", post(approve_review))
        .route("/reviews/{id}/flag", post(flag_review))
        .route("/reviews/{id}/export", post(export_review))
        .route("/stats", get(stats))
        .route("/drift", get(drift))
        .route("/drift/check", post(drift_check))
        .route("/drills", post(record_drill).get(list_drills))
        .route("/log/consistency", get(consistency))
        .route("/notifications", get(list_notifications))
        .route("/notifications/{id}/retry", post(retry_notification))
        .route("/log/checkpoint", get(checkpoint))
        .route("/log/entries/{index}", get(entry))
        .route("/openapi.json", get(openapi_json));
    if state.test_clock.is_some() {
        v1 = v1.route("/debug/clock", post(advance_clock));
    }
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/.well-known/jwks.json", get(jwks))
        .nest("/v1", v1)
        .fallback(not_found)
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

#[utoipa::path(get, path = "/healthz", security(()), responses((status = 200, description = "The process is up")))]
async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

#[utoipa::path(get, path = "/readyz", security(()), responses(
    (status = 200, description = "The database answers and the log accepts appends"),
    (status = 503, description = "Not ready", body = ErrorBody)))]
async fn readyz(State(st): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    match st.service.store().head_state().await {
        Ok(h) => Ok(Json(serde_json::json!({ "status": "ready", "log_size": h.size }))),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: the database does not answer");
            Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the database does not answer"))
        }
    }
}

#[utoipa::path(get, path = "/.well-known/jwks.json", security(()), responses((status = 200, description = "JWKS of the grant-token keys")))]
async fn jwks(State(st): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], st.service.jwks()).into_response()
}

async fn metrics_text(_caller: Caller, State(st): State<AppState>) -> ApiResult<Response> {
    let counts = st.service.grant_counts().await?;
    for (state, n) in counts {
        metrics::gauge!("breakglass_grants", "state" => state).set(n as f64);
    }
    crate::service::stats::export_metrics(&st.service.stats(&_caller, None).await?);
    let text = st.metrics.as_ref().map(|h| h.render()).unwrap_or_default();
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

async fn openapi_json(_caller: Caller) -> Json<utoipa::openapi::OpenApi> {
    Json(openapi())
}

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

#[utoipa::path(post, path = "/v1/grants", request_body = GrantRequest, responses(
    (status = 201, body = GrantView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn request_grant(
    caller: Caller,
    State(st): State<AppState>,
    Body(req): Body<GrantRequest>,
) -> ApiResult<(StatusCode, Json<GrantView>)> {
    let start = Instant::now();
    let v = st.service.request(&caller, &req).await?;
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
    Ok(Json(st.service.show(&caller, &id).await?))
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
    Ok(Json(st.service.approve(&caller, &id, req.comment.as_deref()).await?))
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
    Ok(Json(st.service.revoke(&caller, &id, &req.reason).await?))
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

#[utoipa::path(post, path = "/v1/policy/reload",
    responses((status = 200, body = PolicyReloaded), (status = 422, body = ErrorBody)))]
async fn reload_policy(caller: Caller, State(st): State<AppState>) -> ApiResult<Json<PolicyReloaded>> {
    if !caller.is_admin() {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "only an admin API token may reload the policy"));
    }
    Ok(Json(st.service.reload_by(&caller).await?))
}

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CiQuery {
    scope: String,
    gate: Option<String>,
    principal: Option<String>,
}

#[utoipa::path(get, path = "/v1/ci/status", params(
    ("scope" = String, Query, description = "pipeline:<project>/<stage>[@<environment>]"),
    ("gate" = Option<String>, Query), ("principal" = Option<String>, Query, description = "service tokens only")),
    responses((status = 200, body = CiStatus), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn ci_status(caller: Caller, State(st): State<AppState>, Q(q): Q<CiQuery>) -> ApiResult<Json<CiStatus>> {
    Ok(Json(st.service.ci_status(&caller, &q.scope, q.principal.as_deref(), q.gate.as_deref()).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockAdvance {
    advance_ms: i64,
}

async fn advance_clock(
    caller: Caller,
    State(st): State<AppState>,
    Body(req): Body<ClockAdvance>,
) -> ApiResult<Json<serde_json::Value>> {
    if !caller.is_admin() {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "only an admin may move the test clock"));
    }
    let Some(clock) = &st.test_clock else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", "no test clock"));
    };
    if req.advance_ms < 0 {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "bad_request", "the clock only moves forward"));
    }
    clock.advance(req.advance_ms);
    // What fell due is ended before the answer, so a test that moves the
    // clock sees the result at once instead of waiting for the timer.
    st.service.expire_due().await?;
    st.service.wake_timer();
    st.service.wake_outbox();
    let now = breakglass_core::time::Clock::now(clock.as_ref());
    Ok(Json(serde_json::json!({ "now": now })))
}

// ---- incidents ---------------------------------------------------------------

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
    body: axum::body::Bytes,
) -> ApiResult<Json<IncidentReceipt>> {
    receive(&st, breakglass_core::incident::Source::PagerDuty, &headers, &body).await
}

/// Opsgenie outgoing webhooks, authenticated by the configured credential.
#[utoipa::path(post, path = "/v1/incidents/opsgenie", request_body(content = String, content_type = "application/json"),
    responses((status = 200, body = IncidentReceipt), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn incident_opsgenie(
    State(st): State<AppState>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Json<IncidentReceipt>> {
    receive(&st, breakglass_core::incident::Source::Opsgenie, &headers, &body).await
}

/// Prometheus Alertmanager webhooks, authenticated by a bearer token.
#[utoipa::path(post, path = "/v1/incidents/alertmanager", request_body(content = String, content_type = "application/json"),
    responses((status = 200, body = IncidentReceipt), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn incident_alertmanager(
    State(st): State<AppState>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
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
    body: axum::body::Bytes,
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

// ---- notifications -------------------------------------------------------------

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

// ---- reviews -------------------------------------------------------------------

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

/// Drift the server sees for itself: grants lagging or contradicting their log, standing backdoors in policy.
#[utoipa::path(post, path = "/v1/drift/check", responses((status = 200, body = DriftCheck), (status = 403, body = ErrorBody)))]
async fn drift_check(caller: Caller, State(st): State<AppState>) -> ApiResult<Json<DriftCheck>> {
    Ok(Json(st.service.drift_check(&caller).await?))
}

#[utoipa::path(post, path = "/v1/drills", request_body = DrillReport,
    responses((status = 200, body = DrillRecord), (status = 400, body = ErrorBody)))]
async fn record_drill(
    caller: Caller,
    State(st): State<AppState>,
    Body(req): Body<DrillReport>,
) -> ApiResult<Json<DrillRecord>> {
    Ok(Json(st.service.record_drill(&caller, &req).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitQuery {
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/v1/drills", params(("limit" = Option<u32>, Query)),
    responses((status = 200, body = DrillList)))]
async fn list_drills(caller: Caller, State(st): State<AppState>, Q(q): Q<LimitQuery>) -> ApiResult<Json<DrillList>> {
    Ok(Json(st.service.drills(&caller, limit(q.limit)?).await?))
}

#[utoipa::path(get, path = "/v1/drift", responses((status = 200, body = DriftReport), (status = 403, body = ErrorBody)))]
async fn drift(caller: Caller, State(st): State<AppState>) -> ApiResult<Json<DriftReport>> {
    Ok(Json(st.service.drift(&caller).await?))
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
