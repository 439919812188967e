//! Malformed input answers the API's JSON error, never axum's plain-text
//! rejection: for every route that reads a query string or a path parameter,
//! a malformed one gets a 4xx whose body is `{"error": {"code", "message"}}`;
//! so does a bad body (not JSON, the wrong content type, too large) on every
//! route that reads one. The routes that must have a row are read from the
//! OpenAPI document, so a new route with parameters or a body needs one too.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use breakglass_core::api::ErrorBody;
use breakglass_server::http::{AppState, router};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

use crate::harness::*;

/// The body limit the harness's router has.
const LIMIT: usize = 64 * 1024;

/// What one malformed request got back.
struct Answer {
    status: StatusCode,
    content_type: Option<String>,
    body: Vec<u8>,
}

async fn send(
    app: &axum::Router,
    method: &Method,
    uri: &str,
    token: Option<&str>,
    body: Option<(&str, Vec<u8>)>,
) -> Answer {
    let mut req = Request::builder().method(method.clone()).uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = match body {
        Some((content_type, bytes)) => req.header(header::CONTENT_TYPE, content_type).body(Body::from(bytes)),
        None => req.body(Body::empty()),
    };
    let res = app.clone().oneshot(req.unwrap()).await.unwrap();
    let status = res.status();
    let content_type = res.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned());
    let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
    Answer { status, content_type, body }
}

/// `a` is a 4xx, `status`, with a JSON [`ErrorBody`] whose code is `code`.
fn assert_json_error(what: &str, a: &Answer, status: StatusCode, code: &str) {
    let text = String::from_utf8_lossy(&a.body);
    assert!(a.status.is_client_error(), "{what}: {} {text}", a.status);
    assert_eq!(a.status, status, "{what}: {text}");
    assert_eq!(a.content_type.as_deref(), Some("application/json"), "{what}: {text}");
    let err: ErrorBody = serde_json::from_slice(&a.body).unwrap_or_else(|e| panic!("{what}: {e}: {text}"));
    assert_eq!(err.error.code, code, "{what}: {text}");
    assert!(!err.error.message.is_empty(), "{what}: {text}");
}

/// Every `METHOD /path` of the OpenAPI document whose operation has a
/// parameter (`in` query or path), or a request body.
fn documented() -> (BTreeSet<String>, BTreeSet<String>) {
    let doc = serde_json::to_value(breakglass_server::http::openapi()).unwrap();
    let (mut with_params, mut with_body) = (BTreeSet::new(), BTreeSet::new());
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let key = format!("{} {path}", method.to_uppercase());
            if op["parameters"].as_array().is_some_and(|p| !p.is_empty()) {
                with_params.insert(key.clone());
            }
            if op.get("requestBody").is_some() {
                with_body.insert(key);
            }
        }
    }
    (with_params, with_body)
}

/// For each route (as documented) with a query string or path parameters: malformed
/// requests to it. Each row: the route (its method is the request's), and a URI.
const MALFORMED_PARAMS: &[(&str, &str)] = &[
    ("GET /v1/sessions", "/v1/sessions?all=maybe"),
    ("GET /v1/sessions", "/v1/sessions?principal=alice&unknown=1"),
    ("DELETE /v1/sessions", "/v1/sessions"),
    ("DELETE /v1/sessions", "/v1/sessions?principal=alice&all=true"),
    ("DELETE /v1/sessions/{id}", "/v1/sessions/%FF"),
    ("GET /v1/grants", "/v1/grants?limit=ten"),
    ("GET /v1/grants", "/v1/grants?limit=-1"),
    ("GET /v1/grants", "/v1/grants?limit=0"),
    ("GET /v1/grants", "/v1/grants?limit=4294967296"),
    ("GET /v1/grants", "/v1/grants?status=active"),
    ("GET /v1/grants/{id}", "/v1/grants/%FF"),
    ("GET /v1/grants/{id}/status", "/v1/grants/%FF/status"),
    ("POST /v1/grants/{id}/approve", "/v1/grants/%FF/approve"),
    ("POST /v1/grants/{id}/deny", "/v1/grants/%C3%28/deny"),
    ("POST /v1/grants/{id}/revoke", "/v1/grants/%FF/revoke"),
    ("POST /v1/grants/{id}/extend", "/v1/grants/%FF/extend"),
    ("POST /v1/grants/{id}/token", "/v1/grants/%FF/token"),
    ("GET /v1/check", "/v1/check?principal=alice&scope=git:payments/api@refs/heads/main"),
    ("GET /v1/check", "/v1/check"),
    ("DELETE /v1/tokens/{id}", "/v1/tokens/%FF"),
    ("GET /v1/repos/refs", "/v1/repos/refs"),
    ("GET /v1/repos/refs", "/v1/repos/refs?repo=payments/api&ref=main"),
    ("GET /v1/ci/status", "/v1/ci/status"),
    ("GET /v1/ci/status", "/v1/ci/status?scope=pipeline:payments/deploy&stage=prod"),
    ("GET /v1/incidents", "/v1/incidents?open=maybe"),
    ("GET /v1/incidents", "/v1/incidents?limit=1001"),
    ("GET /v1/incidents/{id}", "/v1/incidents/%FF"),
    ("GET /v1/notifications", "/v1/notifications?limit=many"),
    ("POST /v1/notifications/{id}/retry", "/v1/notifications/%FF/retry"),
    ("GET /v1/reviews", "/v1/reviews?overdue=perhaps"),
    ("GET /v1/reviews", "/v1/reviews?limit="),
    ("GET /v1/reviews/{id}", "/v1/reviews/%FF"),
    ("POST /v1/reviews/{id}/approve", "/v1/reviews/%FF/approve"),
    ("POST /v1/reviews/{id}/flag", "/v1/reviews/%FF/flag"),
    ("POST /v1/reviews/{id}/export", "/v1/reviews/%FF/export"),
    ("GET /v1/stats", "/v1/stats?since=yesterday"),
    ("GET /v1/stats", "/v1/stats?until=2026-01-01T00:00:00Z"),
    ("GET /v1/drills", "/v1/drills?limit=x"),
    ("POST /v1/forges/{forge}/webhook", "/v1/forges/%FF/webhook"),
    ("GET /v1/log/entries/{index}", "/v1/log/entries/first"),
    ("GET /v1/log/entries/{index}", "/v1/log/entries/-1"),
    ("GET /v1/log/entries/{index}", "/v1/log/entries/18446744073709551616"),
    ("GET /v1/log/consistency", "/v1/log/consistency"),
    ("GET /v1/log/consistency", "/v1/log/consistency?old=-1"),
    ("GET /v1/log/consistency", "/v1/log/consistency?old=999999"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_queries_and_path_parameters_answer_json_errors() {
    let setup = Setup::new();
    let srv = Server::sqlite(&setup).await;
    let admin = srv.admin().await;
    let size = srv.log_size().await;
    let (with_params, _) = documented();
    let covered: BTreeSet<String> = MALFORMED_PARAMS.iter().map(|(route, _)| (*route).to_owned()).collect();
    let missing: Vec<_> = with_params.difference(&covered).collect();
    assert!(missing.is_empty(), "routes with parameters but no malformed row here: {missing:?}");
    let undocumented: Vec<_> = covered.difference(&with_params).collect();
    assert!(undocumented.is_empty(), "rows for routes the document does not give parameters: {undocumented:?}");
    for (route, uri) in MALFORMED_PARAMS {
        let (method, _) = route.split_once(' ').unwrap();
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        // A well-formed JSON body, so that only the parameter is wrong.
        let body = (method == Method::POST).then(|| ("application/json", b"{}".to_vec()));
        let a = send(&srv.app, &method, uri, Some(&admin), body).await;
        assert_json_error(&format!("{route}: {method} {uri}"), &a, StatusCode::BAD_REQUEST, "bad_request");
    }
    assert_eq!(srv.log_size().await, size, "nothing malformed was logged");
}

/// Every route (as documented) that reads a body, and a path to send it to.
const WITH_BODY: &[(&str, &str)] = &[
    ("POST /v1/login/challenge", "/v1/login/challenge"),
    ("POST /v1/login", "/v1/login"),
    ("POST /v1/grants", "/v1/grants"),
    ("POST /v1/grants/{id}/approve", "/v1/grants/gr_nope/approve"),
    ("POST /v1/grants/{id}/deny", "/v1/grants/gr_nope/deny"),
    ("POST /v1/grants/{id}/revoke", "/v1/grants/gr_nope/revoke"),
    ("POST /v1/grants/{id}/extend", "/v1/grants/gr_nope/extend"),
    ("POST /v1/tokens", "/v1/tokens"),
    ("POST /v1/events", "/v1/events"),
    ("POST /v1/repos", "/v1/repos"),
    ("POST /v1/reviews/{id}/approve", "/v1/reviews/rv_nope/approve"),
    ("POST /v1/reviews/{id}/flag", "/v1/reviews/rv_nope/flag"),
    ("POST /v1/drills", "/v1/drills"),
    ("POST /v1/incidents/pagerduty", "/v1/incidents/pagerduty"),
    ("POST /v1/incidents/opsgenie", "/v1/incidents/opsgenie"),
    ("POST /v1/incidents/alertmanager", "/v1/incidents/alertmanager"),
    ("POST /v1/incidents/generic", "/v1/incidents/generic"),
    ("POST /v1/forges/install", "/v1/forges/install"),
    ("POST /v1/forges/{forge}/webhook", "/v1/forges/github/webhook"),
];

/// The forge webhook takes bodies up to the largest push, and answers for a
/// forge that is not configured before it reads one.
const FORGE_WEBHOOK: &str = "/v1/forges/github/webhook";

/// The incident receivers read raw bytes and authenticate them before parsing.
fn is_receiver(path: &str) -> bool {
    path.starts_with("/v1/incidents/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_answer_json_errors() {
    let setup = Setup::new();
    let srv = Server::sqlite(&setup).await;
    let admin = srv.admin().await;
    // The test clock's route is not in the document; a router with one has it.
    let state = AppState { service: srv.service.clone(), metrics: None, test_clock: Some(Arc::default()) };
    let with_clock = router(state, LIMIT);
    let size = srv.log_size().await;
    let (_, with_body) = documented();
    let covered: BTreeSet<String> = WITH_BODY.iter().map(|(route, _)| (*route).to_owned()).collect();
    assert_eq!(with_body, covered, "every route with a body has a row here");
    let huge = format!("{{\"reason\": \"{}\"}}", "x".repeat(LIMIT + 1));
    let mut rows: Vec<(&axum::Router, &str)> = WITH_BODY.iter().map(|(_, path)| (&srv.app, *path)).collect();
    rows.push((&with_clock, "/v1/debug/clock"));
    for (app, path) in rows {
        let post = |content_type: &'static str, body: &str| {
            send(app, &Method::POST, path, Some(&admin), Some((content_type, body.as_bytes().to_vec())))
        };
        if path == FORGE_WEBHOOK {
            let larger = "x".repeat(breakglass_core::forge::MAX_BODY_BYTES + 1);
            let a = post("application/json", &larger).await;
            assert_json_error(&format!("{path}: too large"), &a, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
            for body in [huge.as_str(), "{\"ref\": [", "42"] {
                let a = post("application/json", body).await;
                assert_json_error(&format!("{path}: no such forge"), &a, StatusCode::NOT_FOUND, "not_found");
            }
            continue;
        }
        let a = post("application/json", &huge).await;
        assert_json_error(&format!("{path}: too large"), &a, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
        if is_receiver(path) {
            // Bytes before authentication: unsigned garbage is unauthenticated, not parsed.
            let a = post("application/json", "{\"event\": [").await;
            assert_json_error(&format!("{path}: unsigned, not JSON"), &a, StatusCode::UNAUTHORIZED, "unauthorized");
            continue;
        }
        let a = post("application/json", "{\"reason\": [").await;
        assert_json_error(&format!("{path}: not JSON"), &a, StatusCode::BAD_REQUEST, "bad_request");
        let a = post("application/json", "42").await;
        assert_json_error(&format!("{path}: not an object"), &a, StatusCode::BAD_REQUEST, "bad_request");
        let a = post("text/plain", "{}").await;
        assert_json_error(&format!("{path}: wrong content type"), &a, StatusCode::BAD_REQUEST, "bad_request");
        let a = send(app, &Method::POST, path, Some(&admin), None).await;
        assert_json_error(&format!("{path}: no body, no content type"), &a, StatusCode::BAD_REQUEST, "bad_request");
    }
    assert_eq!(srv.log_size().await, size, "nothing refused was logged");
}
