//! Security tests for hostile input (issue 14): every attack of the campaign
//! on fields, webhooks and CI identities, performed through the HTTP router,
//! together with the hostile-body and webhook attacks that already held, so
//! that a door that opens again is found here.
//!
//! Each refusal is checked for what users rely on: the status, a message
//! that names the input and the problem, and nothing stored or logged.

use axum::http::{Method, StatusCode};
use breakglass_core::incident::sign_generic;
use breakglass_core::time::Clock as _;
use breakglass_testkit::fixtures::incident_text as fixture;
use serde_json::{Value, json};

use crate::harness::*;

const GENERIC_SECRET: &str = "generic-secret-0123456789";
const PD_SECRET: &str = "pagerduty-secret-abcdefghij";
const AM_TOKEN: &str = "alertmanager-token-0123456789";
const OG_TOKEN: &str = "opsgenie-token-0123456789ab";

/// What a hostile requester puts in a reason: each makes a terminal do
/// something (clear the screen, overprint a line, erase what came before,
/// open a link, cut a C string, reverse the text), with the position and
/// code point the refusal must name. (A newline is allowed in a reason,
/// which may be a write-up; displays escape it on one-line fields.)
const HOSTILE: [(&str, usize, &str); 6] = [
    ("\u{1b}[2J\u{1b}[Happroved by security", 1, "U+001B"),
    ("hotfix\rAPPROVED BY CAROL", 7, "U+000D"),
    ("hotfix\u{8}\u{8}\u{8}\u{8}\u{8}\u{8}approved", 7, "U+0008"),
    ("hotfix \u{1b}]8;;https://evil.example\u{7}docs\u{1b}]8;;\u{7}", 8, "U+001B"),
    ("hotfix\u{0}", 7, "U+0000"),
    ("hotfix \u{202e}txt.exe", 8, "U+202E"),
];

fn setup() -> Setup {
    let mut setup = Setup::new();
    setup.incidents.generic_secrets = vec![GENERIC_SECRET.into()];
    setup.incidents.pagerduty_secrets = vec![PD_SECRET.into()];
    setup.incidents.alertmanager_tokens = vec![AM_TOKEN.into()];
    setup.incidents.opsgenie_credentials = vec![OG_TOKEN.into()];
    setup
}

fn message(v: &Value) -> String {
    v["error"]["message"].as_str().unwrap_or_default().to_owned()
}

/// PagerDuty's signature with this file's secret.
fn pd_sign(body: &str) -> String {
    crate::harness::pd_sign(PD_SECRET, body)
}

/// Sends a body to a receiver, correctly authenticated for its provider.
async fn deliver(srv: &Server, provider: &str, body: &str) -> (StatusCode, Value) {
    let path = format!("/v1/incidents/{provider}");
    match provider {
        "pagerduty" => srv.raw(&path, &[("x-pagerduty-signature", &pd_sign(body))], body.as_bytes()).await,
        "generic" => {
            let ts = srv.clock.now().0 / 1000;
            let sig = sign_generic(GENERIC_SECRET.as_bytes(), ts, body.as_bytes());
            let ts = ts.to_string();
            srv.raw(&path, &[("x-breakglass-timestamp", &ts), ("x-breakglass-signature", &sig)], body.as_bytes()).await
        }
        "alertmanager" => srv.raw(&path, &[("authorization", &format!("Bearer {AM_TOKEN}"))], body.as_bytes()).await,
        "opsgenie" => srv.raw(&path, &[("authorization", &format!("Bearer {OG_TOKEN}"))], body.as_bytes()).await,
        other => panic!("no provider {other}"),
    }
}

/// A fixture with its times moved to the server's now (PagerDuty's body
/// carries its own time, which must be fresh).
fn fresh(srv: &Server, name: &str) -> String {
    let at = srv.clock.now().to_rfc3339();
    fixture(name).replace("2021-03-04T10:00:00.000Z", &at).replace("2021-03-04T11:00:00.000Z", &at)
}

async fn incident_count(srv: &Server, admin: &str) -> usize {
    let (status, v) = srv.get("/v1/incidents", admin).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v["incidents"].as_array().unwrap().len()
}

// ---------------------------------------------------------------------------
// Finding 6: control characters in stored text
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue14_control_characters_in_every_free_text_field_are_refused_naming_field_and_code_point() {
    let setup = setup();
    let srv = Server::sqlite(&setup).await;
    let alice = srv.login("alice", &setup.keys.alice).await;
    let bob = srv.login("bob", &setup.keys.bob).await;

    // A pending grant to approve or deny, an active one to extend, revoke and review.
    let (_, pending) = srv.post("/v1/grants", &alice, request_body(MAIN, "push", "30m", "INC-9: hotfix")).await;
    let pending = pending["id"].as_str().unwrap().to_owned();
    let (_, active) = srv.post("/v1/grants", &alice, request_body(MAIN, "push", "30m", "INC-9: second fix")).await;
    let active = active["id"].as_str().unwrap().to_owned();
    let (status, v) = srv.post(&format!("/v1/grants/{active}/approve"), &bob, json!({})).await;
    assert_eq!((status, v["state"].as_str()), (StatusCode::OK, Some("active")), "{v}");

    let size = srv.log_size().await;
    for (text, position, code) in HOSTILE {
        let want = format!("character {position} is {code}");
        let cases: Vec<(&str, String, &str, Value)> = vec![
            ("request reason", "/v1/grants".into(), alice.as_str(), request_body(MAIN, "push", "30m", text)),
            ("approval comment", format!("/v1/grants/{pending}/approve"), bob.as_str(), json!({ "comment": text })),
            ("deny reason", format!("/v1/grants/{pending}/deny"), bob.as_str(), json!({ "reason": text })),
            ("revoke reason", format!("/v1/grants/{active}/revoke"), alice.as_str(), json!({ "reason": text })),
            (
                "extend reason",
                format!("/v1/grants/{active}/extend"),
                alice.as_str(),
                json!({ "by": "5m", "reason": text }),
            ),
        ];
        for (what, path, token, body) in cases {
            let (status, v) = srv.post(&path, token, body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{what} {text:?}: {v}");
            let msg = message(&v);
            let field = if what == "approval comment" { "comment: " } else { "reason: " };
            assert!(msg.starts_with(field) && msg.contains(&want), "{what} {text:?}: {msg}");
            // The refusal never repeats the hostile text.
            assert!(!msg.contains('\u{1b}') && !msg.contains('\r'), "{what}: {msg:?}");
        }
    }
    assert_eq!(srv.log_size().await, size, "nothing refused was logged");
    // A request policy would refuse is held to the same rule: its refusal
    // would be logged with the reason, so the reason is checked first.
    let dave = srv.login("dave", &setup.keys.dave).await;
    let size = srv.log_size().await;
    let (status, v) = srv.post("/v1/grants", &dave, request_body(MAIN, "push", "30m", HOSTILE[0].0)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    let (status, v) = srv.post("/v1/grants", &dave, request_body(MAIN, "push", "30m", "plain")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "policy refuses dave: {v}");
    assert_eq!(srv.kinds_since(size).await, ["grant.refused"], "only the clean refusal was logged");
    let (_, g) = srv.get(&format!("/v1/grants/{pending}"), &alice).await;
    assert_eq!(g["state"], "pending", "{g}");
    let (_, g) = srv.get(&format!("/v1/grants/{active}"), &alice).await;
    assert_eq!((g["state"].as_str(), g["extensions"].as_array().map(Vec::len)), (Some("active"), Some(0)), "{g}");

    // Review decisions: notes are prose (newlines and tabs are fine), each
    // lesson and follow-up one line.
    let (status, v) = srv.post(&format!("/v1/grants/{active}/revoke"), &alice, json!({ "reason": "fixed" })).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let review = breakglass_core::review::review_id(&active);
    let size = srv.log_size().await;
    for (body, starts) in [
        (json!({ "notes": "fine\u{1b}[31m" }), "notes: character 5 is U+001B"),
        (json!({ "notes": "fine\r\u{1b}[2K" }), "notes: character 5 is U+000D"),
        (json!({ "notes": "fine", "lessons": ["ok", "a\nb"] }), "lessons[1]: character 2 is U+000A"),
        (json!({ "notes": "fine", "follow_ups": ["JIRA-1\u{0}"] }), "follow_ups[0]: character 7 is U+0000"),
    ] {
        let (status, v) = srv.post(&format!("/v1/reviews/{review}/approve"), &bob, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert!(message(&v).starts_with(starts), "{body}: {v}");
    }
    assert_eq!(srv.log_size().await, size, "nothing refused was logged");
    let notes = "checked:\n\t- the push\n\t- the deploy";
    let (status, v) = srv.post(&format!("/v1/reviews/{review}/approve"), &bob, json!({ "notes": notes })).await;
    assert_eq!((status, v["notes"].as_str()), (StatusCode::OK, Some(notes)), "{v}");
    srv.verify().await;
}

// ---------------------------------------------------------------------------
// Lenient parsing
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue14_lenient_parsing_is_strict_durations_duplicates_and_made_up_incidents() {
    let setup = setup();
    let srv = Server::sqlite(&setup).await;
    let alice = srv.login("alice", &setup.keys.alice).await;
    let size = srv.log_size().await;
    let with = |key: &str, value: Value| {
        let mut body = request_body(MAIN, "push", "30m", "INC-9: hotfix");
        body[key] = value;
        body
    };
    for (what, body, says) in [
        (
            "30m30m",
            request_body(MAIN, "push", "30m30m", "x"),
            "invalid duration \"30m30m\": the unit m is written twice",
        ),
        ("30s1h", request_body(MAIN, "push", "30s1h", "x"), "invalid duration \"30s1h\""),
        ("a scope twice", with("scopes", json!([MAIN, MAIN])), &format!("scope {MAIN:?} is listed twice")),
        ("a capability twice", with("capabilities", json!(["push", "push"])), "capability \"push\" is listed twice"),
        ("incident none", with("incident", json!("none")), "incident \"none\" is not an incident id"),
        ("unknown source", with("incident", json!("jira:INC-9")), "the source \"jira\" is not pagerduty"),
        ("no provider id", with("incident", json!("pagerduty:")), "the provider id after the source is empty"),
    ] {
        let (status, v) = srv.post("/v1/grants", &alice, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {v}");
        assert!(message(&v).contains(says), "{what}: {v}");
    }
    let (_, list) = srv.get("/v1/grants", &alice).await;
    assert!(list["grants"].as_array().unwrap().is_empty(), "nothing was stored: {list}");
    assert_eq!(srv.log_size().await, size, "nothing was logged");
    // Extensions parse the same way.
    let (_, g) = srv.post("/v1/grants", &alice, request_body(MAIN, "push", "10m", "INC-9: hotfix")).await;
    let bob = srv.login("bob", &setup.keys.bob).await;
    let id = g["id"].as_str().unwrap();
    srv.post(&format!("/v1/grants/{id}/approve"), &bob, json!({})).await;
    let (status, v) =
        srv.post(&format!("/v1/grants/{id}/extend"), &alice, json!({ "by": "5m5m", "reason": "x" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    // A well-formed incident nobody has reported is still recorded as named.
    let (status, g) = srv.post("/v1/grants", &alice, with("incident", json!("pagerduty:PNEW123"))).await;
    assert_eq!((status, g["incident"].as_str()), (StatusCode::CREATED, Some("pagerduty:PNEW123")), "{g}");
}

// ---------------------------------------------------------------------------
// Webhooks: duplicate members
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue14_signed_webhook_bodies_with_a_member_named_twice_are_refused_for_every_provider() {
    let setup = setup();
    let srv = Server::sqlite(&setup).await;
    let admin = srv.admin().await;
    // Each attack repeats a member that decides something (last wins in a
    // lenient reader): the status, the action, the severity.
    let cases = [
        ("pagerduty", "pagerduty-incident-triggered.json", "\"status\": \"triggered\",", "\"status\": \"resolved\", "),
        ("opsgenie", "opsgenie-create.json", "\"action\": \"Create\"", "\"action\": \"Close\", "),
        ("alertmanager", "alertmanager-firing.json", "\"status\": \"firing\"", "\"status\": \"resolved\", "),
        ("generic", "generic-triggered.json", "\"severity\": 1", "\"severity\": 5, "),
    ];
    for (provider, name, member, decoy) in cases {
        let body = fresh(&srv, name);
        assert!(body.contains(member), "{name} has {member}");
        let hostile = body.replacen(member, &format!("{decoy}{member}"), 1);
        let size = srv.log_size().await;
        let (status, v) = deliver(&srv, provider, &hostile).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{provider}: {v}");
        assert!(message(&v).contains("appears twice in one object"), "{provider}: {v}");
        assert_eq!(srv.log_size().await, size, "{provider}: nothing refused was logged");
        assert_eq!(incident_count(&srv, &admin).await, 0, "{provider}: nothing refused was stored");
    }
    // Deeply nested JSON (which a signed body may carry) stops at the parser's limit.
    let deep = format!("{{\"id\": \"INC-1\", \"x\": {}{}}}", "[".repeat(10_000), "]".repeat(10_000));
    let (status, v) = deliver(&srv, "generic", &deep).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert!(message(&v).contains("recursion limit"), "{v}");
    // The same bodies without the repeated member are accepted.
    for (provider, name, _, _) in cases {
        let (status, v) = deliver(&srv, provider, &fresh(&srv, name)).await;
        assert_eq!(status, StatusCode::OK, "{provider}: {v}");
    }
    assert_eq!(incident_count(&srv, &admin).await, 4);
}

// ---------------------------------------------------------------------------
// Incident responders: display names
// ---------------------------------------------------------------------------

/// dave is on call, known by no incident account or e-mail.
fn with_dave_on_call(setup: &Setup) {
    let path = setup.dir.path().join("principals.toml");
    let text =
        std::fs::read_to_string(&path).unwrap().replace("name = \"dave\"", "name = \"dave\"\ngroups = [\"oncall\"]");
    std::fs::write(path, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue14_a_responder_who_names_themselves_dave_does_not_make_dave_a_responder() {
    for match_names in [false, true] {
        let mut setup = setup();
        setup.incidents.match_responder_names = match_names;
        with_dave_on_call(&setup);
        let srv = Server::sqlite(&setup).await;
        let admin = srv.admin().await;
        let dave = srv.login("dave", &setup.keys.dave).await;
        // A severity 1 PagerDuty incident whose assignee is someone else
        // (another user id) who calls themselves "dave".
        let pd = fresh(&srv, "pagerduty-incident-triggered.json")
            .replace("\"id\": \"PALICE1\"", "\"id\": \"PMALLORY\"")
            .replace("\"summary\": \"Alice Example\"", "\"summary\": \"dave\"");
        let (status, v) = deliver(&srv, "pagerduty", &pd).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        // And a generic one naming "dave" with another id and e-mail.
        let generic = json!({
            "id": "INC-77", "title": "Payments down", "severity": 1, "status": "triggered",
            "responders": [{ "name": "dave", "id": "U-MALLORY", "email": "mallory@evil.example" }],
        });
        let (status, v) = deliver(&srv, "generic", &generic.to_string()).await;
        assert_eq!(status, StatusCode::OK, "{v}");

        for incident in ["pagerduty:PBGINC1", "generic:INC-77"] {
            let (_, inc) = srv.get(&format!("/v1/incidents/{incident}"), &admin).await;
            let principal = inc["responders"][0]["principal"].as_str();
            let mut body = request_body(MAIN, "push", "30m", "riding on the incident");
            body["incident"] = json!(incident);
            let (status, g) = srv.post("/v1/grants", &dave, body).await;
            assert_eq!(status, StatusCode::CREATED, "{g}");
            if match_names {
                // Only an operator who turns name matching on gets it.
                assert_eq!(principal, Some("dave"), "{inc}");
                assert_eq!(g["state"], "active", "{incident}: {g}");
            } else {
                assert_eq!(principal, None, "{incident}: a name maps nobody: {inc}");
                assert_eq!(g["state"], "pending", "{incident}: dave is no responder: {g}");
            }
        }
        // Unnamed, the server finds no incident under which dave is a responder.
        if !match_names {
            let (_, g) = srv.post("/v1/grants", &dave, request_body(MAIN, "push", "30m", "any incident")).await;
            assert_eq!((g["state"].as_str(), g["incident"].as_str()), (Some("pending"), None), "{g}");
        }
    }
}

// ---------------------------------------------------------------------------
// CI identities: the login is not the person
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue14_a_ci_token_whose_actor_is_alice_but_whose_actor_id_is_not_hers_does_not_act_as_alice() {
    use breakglass_server::service::config::{CiConfig, CiProject, OidcIssuer};
    // alice is github:id:4242 (and, written the old way, the login github:alice).
    let setup = Setup::with_principals("");
    let path = setup.dir.path().join("principals.toml");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "emails = [\"alice@example.com\"]",
        "emails = [\"alice@example.com\"]\naccounts = [\"github:id:4242\", \"github:alice\"]",
    );
    std::fs::write(&path, text.clone()).unwrap();
    let principals = breakglass_core::principals::Principals::parse(&text, "principals.toml").unwrap();
    let ci = CiConfig {
        issuers: vec![OidcIssuer::github("breakglass")],
        projects: vec![CiProject {
            project: "payments/api".into(),
            issuer: "github".into(),
            repository: "acme/payments-api".into(),
            repository_id: "123456789".into(),
        }],
        max_token_lifetime: std::time::Duration::from_secs(3600),
    };
    let claims = |actor: &str, actor_id: Option<&str>| {
        let mut raw = json!({
            "iss": breakglass_core::oidc::GITHUB_ISSUER, "sub": "repo:acme/payments-api:ref:refs/heads/main",
            "aud": "breakglass", "repository": "acme/payments-api", "repository_id": "123456789", "actor": actor,
        });
        if let Some(id) = actor_id {
            raw["actor_id"] = json!(id);
        }
        breakglass_core::oidc::OidcClaims {
            key_id: "k".into(),
            issuer: breakglass_core::oidc::GITHUB_ISSUER.into(),
            subject: "repo:acme/payments-api:ref:refs/heads/main".into(),
            audience: vec!["breakglass".into()],
            expires_at: breakglass_core::time::Timestamp(T0 + 600_000),
            issued_at: breakglass_core::time::Timestamp(T0),
            not_before: None,
            raw: raw.as_object().unwrap().clone(),
        }
    };
    let issuer = &ci.issuers[0];
    // Someone renamed alice's old login and registered "alice" anew: their
    // token says actor alice, but their own account id.
    let id = ci.identify(issuer, &claims("alice", Some("999999"))).unwrap();
    assert_eq!((id.account.as_str(), id.login.as_deref()), ("github:id:999999", Some("alice")));
    assert!(principals.by_account(&id.account).is_none(), "the login alone acts as nobody");
    // alice herself, whatever her login is now.
    let id = ci.identify(issuer, &claims("alice-renamed", Some("4242"))).unwrap();
    assert_eq!(principals.by_account(&id.account).map(|p| p.name.as_str()), Some("alice"));
    // A token without the id claim identifies nobody, and says which claim.
    let err = ci.identify(issuer, &claims("alice", None)).unwrap_err();
    assert!(err.contains("actor_id"), "{err}");
}

// ---------------------------------------------------------------------------
// Hostile bodies and webhook tricks that already held
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_api_bodies_are_refused_with_nothing_stored() {
    use axum::body::Body;
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;
    let setup = setup();
    let srv = Server::sqlite(&setup).await;
    let alice = srv.login("alice", &setup.keys.alice).await;
    let size = srv.log_size().await;
    let good = request_body(MAIN, "push", "30m", "INC-9").to_string();
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let huge = request_body(MAIN, "push", "30m", &"x".repeat(100 * 1024)).to_string();
    let dup = good.replacen("\"reason\"", "\"reason\":\"decoy\",\"reason\"", 1);
    let unknown = good.replacen('{', "{\"approved\":true,", 1);
    // Every refusal is our JSON error shape, naming the problem.
    for (what, content_type, body, want, says) in [
        ("oversized body", "application/json", huge.as_str(), StatusCode::PAYLOAD_TOO_LARGE, ""),
        ("wrong content type", "text/plain", good.as_str(), StatusCode::BAD_REQUEST, "Content-Type: application/json"),
        ("deeply nested JSON", "application/json", deep.as_str(), StatusCode::BAD_REQUEST, "invalid request body"),
        ("unknown field", "application/json", unknown.as_str(), StatusCode::BAD_REQUEST, "unknown field `approved`"),
        ("duplicate field", "application/json", dup.as_str(), StatusCode::BAD_REQUEST, "duplicate field `reason`"),
        ("not JSON", "application/json", "{\"scopes\": [", StatusCode::BAD_REQUEST, "invalid request body"),
    ] {
        let req = axum::http::Request::builder()
            .method(Method::POST)
            .uri("/v1/grants")
            .header("authorization", format!("Bearer {alice}"))
            .header("content-type", content_type)
            .body(Body::from(body.to_owned()))
            .unwrap();
        let res = srv.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes);
        assert_eq!(status, want, "{what}: {text}");
        assert!(text.contains(says), "{what}: {text}");
    }
    assert_eq!(srv.log_size().await, size, "nothing refused was logged");
    let (_, list) = srv.get("/v1/grants", &alice).await;
    assert!(list["grants"].as_array().unwrap().is_empty(), "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_forgeries_replays_and_stale_deliveries_are_refused() {
    let setup = setup();
    let srv = Server::sqlite(&setup).await;
    let admin = srv.admin().await;
    let body = fresh(&srv, "generic-triggered.json");
    let ts = srv.clock.now().0 / 1000;
    let size = srv.log_size().await;
    let sig = sign_generic(GENERIC_SECRET.as_bytes(), ts, body.as_bytes());
    let forged = sign_generic(b"a-secret-the-attacker-guessed", ts, body.as_bytes());
    let stale_ts = ts - 11 * 60;
    let stale_sig = sign_generic(GENERIC_SECRET.as_bytes(), stale_ts, body.as_bytes());
    let (ts_s, stale_s) = (ts.to_string(), stale_ts.to_string());
    for (what, ts, sig) in [
        ("bad signature", &ts_s, &forged),
        ("stale timestamp", &stale_s, &stale_sig),
        ("no signature", &ts_s, &String::new()),
    ] {
        let mut headers = vec![("x-breakglass-timestamp", ts.as_str())];
        if !sig.is_empty() {
            headers.push(("x-breakglass-signature", sig.as_str()));
        }
        let (status, v) = srv.raw("/v1/incidents/generic", &headers, body.as_bytes()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {v}");
        assert!(!message(&v).contains(GENERIC_SECRET), "{what}: {v}");
    }
    // PagerDuty signs no time: a captured delivery whose own time is old is a replay.
    let old_pd = fixture("pagerduty-incident-triggered.json");
    let (status, v) =
        srv.raw("/v1/incidents/pagerduty", &[("x-pagerduty-signature", &pd_sign(&old_pd))], old_pd.as_bytes()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(srv.log_size().await, size, "nothing refused was logged");
    assert_eq!(incident_count(&srv, &admin).await, 0);
    // The genuine delivery, then its replay: recorded once.
    let headers = [("x-breakglass-timestamp", ts_s.as_str()), ("x-breakglass-signature", sig.as_str())];
    let (status, r) = srv.raw("/v1/incidents/generic", &headers, body.as_bytes()).await;
    assert_eq!((status, r["recorded"].as_array().map(Vec::len)), (StatusCode::OK, Some(1)), "{r}");
    let after = srv.log_size().await;
    let (status, r) = srv.raw("/v1/incidents/generic", &headers, body.as_bytes()).await;
    assert_eq!((status, r["duplicates"].as_array().map(Vec::len)), (StatusCode::OK, Some(1)), "{r}");
    assert_eq!(srv.log_size().await, after, "a replay writes nothing");
    srv.verify().await;
}
