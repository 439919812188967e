//! Incidents through the API (issue 6): each receiver refuses what is
//! unsigned, mis-signed, replayed or malformed with nothing stored; an open
//! incident auto-approves its responders' requests and nobody else's; its
//! resolution ends the grants tied to it; notifications go through the
//! outbox to a real HTTP receiver, with retries and one id per notification.

use axum::http::{Method, StatusCode};
use breakglass_core::incident::sign_generic;
use breakglass_core::time::Clock as _;
use breakglass_testkit::fixtures::incident_text as fixture;
use serde_json::{Value, json};

use crate::harness::*;
use crate::receiver::Receiver;

const GENERIC_SECRET: &str = "generic-secret-0123456789";
const ROTATED_SECRET: &str = "generic-secret-rotated-987";
const PD_SECRET: &str = "pagerduty-secret-abcdefghij";
const AM_TOKEN: &str = "alertmanager-token-0123456789";
const OG_TOKEN: &str = "opsgenie-token-0123456789ab";

/// erin is on call too, but responds to nothing.
const ERIN: &str = "[[principal]]\nname = \"erin\"\ngroups = [\"oncall\"]\naccounts = [\"pagerduty:PERIN01\"]\n";

fn setup() -> Setup {
    let mut setup = Setup::with_principals(ERIN);
    setup.incidents.generic_secrets = vec![GENERIC_SECRET.into(), ROTATED_SECRET.into()];
    setup.incidents.pagerduty_secrets = vec![PD_SECRET.into()];
    setup.incidents.alertmanager_tokens = vec![AM_TOKEN.into()];
    setup.incidents.opsgenie_credentials = vec![OG_TOKEN.into()];
    setup.incidents.resolve_grace_ms = 5 * 60_000;
    setup
}

fn generic(id: &str, event: &str, status: &str, severity: i64, responder_email: &str) -> Value {
    json!({
        "id": id,
        "event_id": event,
        "title": "Payments API error rate above 5%",
        "severity": severity,
        "status": status,
        "services": ["payments-api"],
        "responders": [{ "email": responder_email }],
    })
}

/// The server's clock in whole seconds: what a sender stamps.
fn now_secs(srv: &Server) -> i64 {
    srv.clock.now().0 / 1000
}

async fn send_generic(srv: &Server, body: &Value, secret: &str, ts: i64) -> (StatusCode, Value) {
    let body = body.to_string();
    let sig = sign_generic(secret.as_bytes(), ts, body.as_bytes());
    let ts = ts.to_string();
    srv.raw(
        "/v1/incidents/generic",
        &[("x-breakglass-timestamp", ts.as_str()), ("x-breakglass-signature", sig.as_str())],
        body.as_bytes(),
    )
    .await
}

/// What is sent, with which headers, and the status it must get.
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a [u8], StatusCode);

async fn incidents(srv: &Server, token: &str) -> Vec<Value> {
    let (status, v) = srv.get("/v1/incidents", token).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v["incidents"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_receiver_refuses_unsigned_missigned_replayed_and_malformed_deliveries() {
    let setup = setup();
    let srv = Server::sqlite(&setup).await;
    let admin = srv.admin().await;
    let body = generic("INC-1", "evt-1", "triggered", 1, "alice@example.com");
    let ts = now_secs(&srv);
    let size = srv.log_size().await;

    // Each refusal: 401 (or 400 for a signed but malformed body), nothing stored.
    let text = body.to_string();
    let good_sig = sign_generic(GENERIC_SECRET.as_bytes(), ts, text.as_bytes());
    let ts_s = ts.to_string();
    let old = (ts - 11 * 60).to_string();
    let old_sig = sign_generic(GENERIC_SECRET.as_bytes(), ts - 11 * 60, text.as_bytes());
    let wrong = sign_generic(b"not-the-secret-at-all", ts, text.as_bytes());
    let tampered = text.replace("INC-1", "INC-2");
    let cases: Vec<Case> = vec![
        ("unsigned", vec![], text.as_bytes(), StatusCode::UNAUTHORIZED),
        ("no timestamp", vec![("x-breakglass-signature", &good_sig)], text.as_bytes(), StatusCode::UNAUTHORIZED),
        (
            "wrong secret",
            vec![("x-breakglass-timestamp", &ts_s), ("x-breakglass-signature", &wrong)],
            text.as_bytes(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "tampered body",
            vec![("x-breakglass-timestamp", &ts_s), ("x-breakglass-signature", &good_sig)],
            tampered.as_bytes(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "replayed (11 minutes old)",
            vec![("x-breakglass-timestamp", &old), ("x-breakglass-signature", &old_sig)],
            text.as_bytes(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "malformed signature",
            vec![("x-breakglass-timestamp", &ts_s), ("x-breakglass-signature", "v1=zz")],
            text.as_bytes(),
            StatusCode::UNAUTHORIZED,
        ),
    ];
    for (what, headers, body, want) in cases {
        let (status, v) = srv.raw("/v1/incidents/generic", &headers, body).await;
        assert_eq!(status, want, "{what}: {v}");
        assert!(!v["error"]["message"].as_str().unwrap().contains(GENERIC_SECRET), "{what}: {v}");
    }
    // Signed, but not the generic form: 400 naming the problem.
    for (what, bad) in [
        ("severity out of range", generic("INC-1", "e", "triggered", 9, "alice@example.com")),
        ("unknown status", generic("INC-1", "e", "exploded", 1, "alice@example.com")),
        ("not an object", json!(["INC-1"])),
    ] {
        let (status, v) = send_generic(&srv, &bad, GENERIC_SECRET, ts).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {v}");
    }
    assert_eq!(srv.log_size().await, size, "nothing refused was logged");
    assert!(incidents(&srv, &admin).await.is_empty(), "nothing refused was stored");

    // A good one, then the same delivery again: recorded once.
    let (status, r) = send_generic(&srv, &body, GENERIC_SECRET, ts).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["recorded"], json!(["generic:INC-1"]));
    assert_eq!(srv.kinds_since(size).await, ["incident.opened"]);
    let (status, r) = send_generic(&srv, &body, GENERIC_SECRET, ts).await;
    assert_eq!((status, &r["duplicates"]), (StatusCode::OK, &json!(["generic:INC-1"])), "{r}");
    assert_eq!(srv.log_size().await, size + 1, "a re-delivery adds nothing");

    // The rotated secret is accepted too; the responder maps to alice by e-mail.
    let ack = generic("INC-1", "evt-2", "acknowledged", 1, "alice@example.com");
    let (status, r) = send_generic(&srv, &ack, ROTATED_SECRET, ts).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let (_, inc) = srv.get("/v1/incidents/generic:INC-1", &admin).await;
    assert_eq!((inc["status"].as_str(), inc["severity"].as_i64()), (Some("acknowledged"), Some(1)));
    assert_eq!(inc["responders"][0]["principal"], "alice");
    // The provider's id alone finds it too.
    assert_eq!(srv.get("/v1/incidents/INC-1", &admin).await.1["id"], "generic:INC-1");
    srv.verify().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_receivers_and_watched_services() {
    let mut setup = setup();
    setup.incidents.services = vec!["payments-api".into()];
    let srv = Server::sqlite(&setup).await;
    let admin = srv.admin().await;
    let am = json!({
        "version": "4", "groupKey": "{}:{alertname=\"PaymentsDown\"}", "status": "firing", "receiver": "breakglass",
        "groupLabels": { "alertname": "PaymentsDown" },
        "commonLabels": { "alertname": "PaymentsDown", "severity": "critical", "service": "payments-api" },
        "commonAnnotations": { "summary": "Payments are down" }, "externalURL": "http://alertmanager.example:9093",
        "alerts": [{ "status": "firing", "labels": { "alertname": "PaymentsDown", "severity": "critical", "service": "payments-api" },
            "annotations": { "summary": "Payments are down" }, "startsAt": "2026-11-21T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prometheus.example/graph", "fingerprint": "a1b2c3d4e5f60718" }],
        "truncatedAlerts": 0
    })
    .to_string();
    let size = srv.log_size().await;
    for (what, auth) in [
        ("no token", None),
        ("wrong token", Some("Bearer not-the-token-0000000000")),
        ("wrong scheme", Some(&*format!("Basic {AM_TOKEN}"))),
    ] {
        let headers: Vec<(&str, &str)> = auth.map(|a| vec![("authorization", a)]).unwrap_or_default();
        let (status, v) = srv.raw("/v1/incidents/alertmanager", &headers, am.as_bytes()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {v}");
    }
    assert_eq!(srv.log_size().await, size);
    let bearer = format!("Bearer {AM_TOKEN}");
    let (status, r) = srv.raw("/v1/incidents/alertmanager", &[("authorization", &bearer)], am.as_bytes()).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["recorded"].as_array().unwrap().len(), 1, "{r}");
    let id = r["recorded"][0].as_str().unwrap().to_owned();
    let (_, inc) = srv.get(&format!("/v1/incidents/{}", id.replace('/', "%2F")), &admin).await;
    assert_eq!((inc["severity"].as_i64(), inc["status"].as_str()), (Some(1), Some("triggered")), "{inc}");

    // An incident on a service nobody watches is acknowledged but not stored.
    let other = am.replace("payments-api", "marketing-site").replace("PaymentsDown", "MarketingDown");
    let (status, r) = srv.raw("/v1/incidents/alertmanager", &[("authorization", &bearer)], other.as_bytes()).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert!(r["recorded"].as_array().unwrap().is_empty() && r["ignored"].as_array().unwrap().len() == 1, "{r}");
    assert_eq!(incidents(&srv, &admin).await.len(), 1);

    // Opsgenie: the credential in a custom Authorization header.
    let og = json!({
        "action": "Create",
        "alert": { "alertId": "og-alert-1", "message": "Payments checkout failing", "priority": "P2",
                   "tags": ["service:payments-api"], "username": "alice@example.com", "createdAt": 1_763_719_200_000i64 },
        "source": { "name": "", "type": "web" }, "integrationName": "breakglass", "integrationType": "Webhook"
    })
    .to_string();
    let (status, v) =
        srv.raw("/v1/incidents/opsgenie", &[("authorization", "Bearer wrong-token-000000000")], og.as_bytes()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    let og_auth = format!("Bearer {OG_TOKEN}");
    let (status, r) = srv.raw("/v1/incidents/opsgenie", &[("authorization", &og_auth)], og.as_bytes()).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["recorded"], json!(["opsgenie:og-alert-1"]), "{r}");
    // A receiver with nothing configured refuses everything.
    let (status, _) = srv.raw("/v1/incidents/pagerduty", &[("x-pagerduty-signature", "v1=00")], b"{}").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    srv.verify().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_incident_approves_its_responders_at_once_and_its_resolution_ends_their_grants() {
    let setup = setup();
    let srv = Server::sqlite(&setup).await;
    let admin = srv.admin().await;
    let alice = srv.login("alice", &setup.keys.alice).await;
    let (status, r) = send_generic(
        &srv,
        &generic("INC-7", "e1", "triggered", 1, "alice@example.com"),
        GENERIC_SECRET,
        now_secs(&srv),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{r}");

    // alice responds: active at once, tied to the incident the server picked.
    let (status, g) = srv.post("/v1/grants", &alice, request_body(MAIN, "push", "60m", "fixing INC-7")).await;
    assert_eq!(status, StatusCode::CREATED, "{g}");
    assert_eq!((g["state"].as_str(), g["incident"].as_str()), (Some("active"), Some("generic:INC-7")), "{g}");
    let alice_grant = g["id"].as_str().unwrap().to_owned();
    // Naming the incident does the same.
    let mut named = request_body(MAIN, "push", "30m", "second fix");
    named["incident"] = json!("INC-7");
    let (_, g2) = srv.post("/v1/grants", &alice, named).await;
    assert_eq!((g2["state"].as_str(), g2["incident"].as_str()), (Some("active"), Some("generic:INC-7")), "{g2}");

    // erin is on call but not a responder: she waits for a human.
    let erin_key = keygen(setup.dir.path(), "erin");
    let text = std::fs::read_to_string(setup.dir.path().join("principals.toml")).unwrap();
    let text = text.replace("name = \"erin\"", &format!("name = \"erin\"\nssh_keys = [\"{}\"]", erin_key.line));
    std::fs::write(setup.dir.path().join("principals.toml"), text).unwrap();
    let (status, v) = srv.call(Method::POST, "/v1/policy/reload", Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let erin = srv.login("erin", &erin_key).await;
    let (_, g) = srv.post("/v1/grants", &erin, request_body(MAIN, "push", "60m", "helping with INC-7")).await;
    assert_eq!((g["state"].as_str(), g["incident"].as_str()), (Some("pending"), None), "{g}");

    // A severity 3 incident does not auto-approve anybody.
    send_generic(&srv, &generic("INC-8", "e8", "triggered", 3, "alice@example.com"), GENERIC_SECRET, now_secs(&srv))
        .await;
    let mut on8 = request_body(MAIN, "push", "30m", "INC-8");
    on8["incident"] = json!("generic:INC-8");
    let (_, g) = srv.post("/v1/grants", &alice, on8).await;
    assert_eq!(g["state"], "pending", "{g}");

    // The incident resolves: alice's grants end after the grace, saying why.
    srv.clock.advance(10 * 60_000);
    let resolved_at = srv.clock.now();
    let before = srv.log_size().await;
    let (status, r) =
        send_generic(&srv, &generic("INC-7", "e9", "resolved", 1, "alice@example.com"), GENERIC_SECRET, now_secs(&srv))
            .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["ending_grants"].as_array().unwrap().len(), 2, "{r}");
    assert_eq!(srv.kinds_since(before).await, ["incident.resolved", "grant.ending", "grant.ending"]);
    let (_, g) = srv.get(&format!("/v1/grants/{alice_grant}"), &alice).await;
    assert_eq!(g["expires_at"], resolved_at.0 + 5 * 60_000, "{g}");
    // Ending grants cannot be extended past it.
    let (status, v) =
        srv.post(&format!("/v1/grants/{alice_grant}/extend"), &alice, json!({ "by": "10m", "reason": "more" })).await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    srv.clock.advance(5 * 60_000);
    srv.service.expire_due().await.unwrap();
    let (_, g) = srv.get(&format!("/v1/grants/{alice_grant}"), &alice).await;
    assert_eq!(g["state"], "expired");
    assert!(g["end_reason"].as_str().unwrap().contains("incident generic:INC-7 resolved"), "{g}");
    srv.verify().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_reach_a_real_receiver_with_retries_and_one_id_each() {
    use breakglass_server::service::config::{Channel, Target};
    let receiver = Receiver::start();
    let mut setup = setup();
    setup.notify.expiring_soon_ms = 10 * 60_000;
    setup.notify.channels = vec![Channel {
        name: "ops".into(),
        target: Target::Webhook {
            url: format!("{}/hook", receiver.url),
            secret: b"webhook-secret-0123456789".to_vec(),
        },
        events: Vec::new(),
    }];
    let srv = Server::sqlite(&setup).await;
    let (alice, bob) = (srv.login("alice", &setup.keys.alice).await, srv.login("bob", &setup.keys.bob).await);
    let admin = srv.admin().await;
    let poster = breakglass_client::Poster::new(std::time::Duration::from_secs(10)).unwrap();

    let (_, g) = srv.post("/v1/grants", &alice, request_body(MAIN, "push", "30m", "INC-42 hotfix")).await;
    let id = g["id"].as_str().unwrap().to_owned();
    // The receiver fails twice: the request notice is retried with backoff.
    receiver.fail_next(&[503, 500]);
    assert_eq!(srv.service.deliver_due(&poster).await.unwrap(), 1);
    let (_, list) = srv.get("/v1/notifications?status=pending", &admin).await;
    let n = &list["notifications"][0];
    assert_eq!((n["event"].as_str(), n["attempts"].as_u64()), (Some("requested"), Some(1)), "{list}");
    assert!(n["last_error"].as_str().unwrap().contains("503"), "{n}");
    assert!(!n["last_error"].as_str().unwrap().contains("/hook"), "no URL path in errors: {n}");
    // Not due yet: nothing is sent before the backoff.
    assert_eq!(srv.service.deliver_due(&poster).await.unwrap(), 0);
    srv.clock.advance(1_000);
    assert_eq!(srv.service.deliver_due(&poster).await.unwrap(), 1);
    srv.clock.advance(2_000);
    assert_eq!(srv.service.deliver_due(&poster).await.unwrap(), 1);
    let got = receiver.received();
    assert_eq!(got.len(), 3);
    let ids: Vec<&str> = got.iter().map(|r| r.headers["x-breakglass-delivery"].as_str()).collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "one idempotency id on every attempt: {ids:?}");
    assert!(got.iter().all(|r| r.path == "/hook"));
    let body: Value = serde_json::from_str(&got[2].body).unwrap();
    assert_eq!(body["event"], "requested");
    assert_eq!(body["approvers"], json!(["bob", "carol"]), "{body}");
    // The signature verifies with the generic scheme.
    let r = &got[2];
    breakglass_core::incident::verify_generic(
        Some(&r.headers["x-breakglass-timestamp"]),
        Some(&r.headers["x-breakglass-signature"]),
        r.body.as_bytes(),
        &[b"webhook-secret-0123456789".to_vec()],
        breakglass_core::time::Timestamp(r.headers["x-breakglass-timestamp"].parse::<i64>().unwrap() * 1000),
        60_000,
    )
    .unwrap();

    // Approval: approved + activated now, expiring soon 20 minutes later.
    // Notifications due together are delivered concurrently, so they may
    // arrive in either order (receivers de-duplicate by id; each body names
    // its event and time).
    srv.post(&format!("/v1/grants/{id}/approve"), &bob, json!({})).await;
    srv.service.deliver_due(&poster).await.unwrap();
    let mut events: Vec<String> = receiver.received()[3..]
        .iter()
        .map(|r| serde_json::from_str::<Value>(&r.body).unwrap()["event"].as_str().unwrap().to_owned())
        .collect();
    events.sort();
    assert_eq!(events, ["activated", "approved"]);
    srv.clock.advance(20 * 60_000);
    srv.service.deliver_due(&poster).await.unwrap();
    srv.clock.advance(10 * 60_000);
    srv.service.expire_due().await.unwrap();
    srv.service.deliver_due(&poster).await.unwrap();
    let events: Vec<String> = receiver.received()[5..]
        .iter()
        .map(|r| serde_json::from_str::<Value>(&r.body).unwrap()["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(events, ["expiring_soon", "expired"]);
    let (_, list) = srv.get("/v1/notifications?status=delivered", &admin).await;
    assert_eq!(list["notifications"].as_array().unwrap().len(), 5, "{list}");
    // Nothing left to send.
    assert_eq!(srv.service.deliver_due(&poster).await.unwrap(), 0);
    assert!(srv.service.next_notification_due().await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_never_recovers_is_given_up_and_shown_as_failed() {
    use breakglass_server::service::config::{Channel, Target};
    let receiver = Receiver::start();
    let mut setup = setup();
    setup.notify.channels = vec![Channel {
        name: "slack".into(),
        target: Target::Slack { url: format!("{}/services/T000/B000/SECRETPATH", receiver.url) },
        events: vec![breakglass_core::notify::NotifyEvent::Activated],
    }];
    let srv = Server::sqlite(&setup).await;
    let alice = srv.login("alice", &setup.keys.alice).await;
    let admin = srv.admin().await;
    let poster = breakglass_client::Poster::new(std::time::Duration::from_secs(10)).unwrap();
    send_generic(&srv, &generic("INC-9", "e1", "triggered", 1, "alice@example.com"), GENERIC_SECRET, now_secs(&srv))
        .await;
    let (_, g) = srv.post("/v1/grants", &alice, request_body(MAIN, "push", "30m", "INC-9")).await;
    assert_eq!(g["state"], "active");
    receiver.fail_next(&vec![500; breakglass_core::notify::MAX_ATTEMPTS as usize]);
    for attempt in 1..=breakglass_core::notify::MAX_ATTEMPTS {
        assert_eq!(srv.service.deliver_due(&poster).await.unwrap(), 1, "attempt {attempt}");
        srv.clock.advance(breakglass_core::notify::backoff_ms(attempt));
    }
    let (_, list) = srv.get("/v1/notifications?status=failed", &admin).await;
    let n = &list["notifications"][0];
    assert_eq!((n["channel"].as_str(), n["event"].as_str()), (Some("slack"), Some("activated")), "{list}");
    assert!(!n["last_error"].as_str().unwrap().contains("SECRETPATH"), "{n}");
    let got = receiver.received();
    assert_eq!(got.len() as u32, breakglass_core::notify::MAX_ATTEMPTS);
    let text = serde_json::from_str::<Value>(&got[0].body).unwrap()["text"].as_str().unwrap().to_owned();
    assert!(text.contains("alice broke glass"), "{text}");
    // An admin queues it again; the receiver is back.
    let nid = n["id"].as_str().unwrap();
    let (status, v) = srv.call(Method::POST, &format!("/v1/notifications/{nid}/retry"), Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    // (A day has passed: alice logs in again.) Only an admin may retry.
    let alice = srv.login("alice", &setup.keys.alice).await;
    let (status, _) = srv.call(Method::POST, &format!("/v1/notifications/{nid}/retry"), Some(&alice), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    srv.service.deliver_due(&poster).await.unwrap();
    assert_eq!(srv.get("/v1/notifications?status=delivered", &admin).await.1["notifications"][0]["id"], nid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagerduty_receiver_with_the_documented_payloads() {
    let mut setup = setup();
    // Rotation: the old and the new subscription secret are both configured.
    setup.incidents.pagerduty_secrets = vec![PD_SECRET.into(), "pagerduty-secret-new-0123456".into()];
    let srv = Server::sqlite(&setup).await;
    let admin = srv.admin().await;
    // The fixture's time moved to the server's now (its body carries its time).
    let at = srv.clock.now().to_rfc3339();
    let fresh =
        |name: &str| fixture(name).replace("2021-03-04T10:00:00.000Z", &at).replace("2021-03-04T11:00:00.000Z", &at);
    let body = fresh("pagerduty-incident-triggered.json");
    let size = srv.log_size().await;
    let stale = fixture("pagerduty-incident-triggered.json");
    let good = pd_sign(PD_SECRET, &body);
    let both =
        format!("{},{}", pd_sign("some-other-secret-0000000", &body), pd_sign("pagerduty-secret-new-0123456", &body));
    let refused: Vec<(&str, String, String)> = vec![
        ("no signature", String::new(), body.clone()),
        ("wrong secret", pd_sign("not-the-pagerduty-secret-00", &body), body.clone()),
        ("tampered body", good.clone(), body.replace("\"P1\"", "\"P5\"")),
        ("only unknown versions", format!("v2={}", &good[3..]), body.clone()),
        ("replayed: the documented 2021 delivery", pd_sign(PD_SECRET, &stale), stale.clone()),
    ];
    for (what, sig, body) in &refused {
        let headers: Vec<(&str, &str)> =
            if sig.is_empty() { vec![] } else { vec![("x-pagerduty-signature", sig.as_str())] };
        let (status, v) = srv.raw("/v1/incidents/pagerduty", &headers, body.as_bytes()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {v}");
    }
    // Signed but malformed: 400, nothing stored.
    let garbage = "{\"event\": 42}";
    let (status, v) = srv
        .raw("/v1/incidents/pagerduty", &[("x-pagerduty-signature", &pd_sign(PD_SECRET, garbage))], garbage.as_bytes())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(srv.log_size().await, size, "nothing refused was logged");
    assert!(incidents(&srv, &admin).await.is_empty());

    // Signed with the new secret among other entries: accepted.
    let (status, r) = srv.raw("/v1/incidents/pagerduty", &[("x-pagerduty-signature", &both)], body.as_bytes()).await;
    assert_eq!((status, &r["recorded"]), (StatusCode::OK, &json!(["pagerduty:PBGINC1"])), "{r}");
    let (_, inc) = srv.get("/v1/incidents/pagerduty:PBGINC1", &admin).await;
    assert_eq!((inc["severity"].as_i64(), inc["services"][0].as_str()), (Some(1), Some("payments-api")), "{inc}");
    assert_eq!(inc["responders"][0]["id"], "PALICE1");
    // A ping is acknowledged and records nothing.
    let ping = fresh("pagerduty-ping.json");
    let (status, r) =
        srv.raw("/v1/incidents/pagerduty", &[("x-pagerduty-signature", &good_sig(&ping))], ping.as_bytes()).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert!(r["recorded"].as_array().unwrap().is_empty() && !r["ignored"].as_array().unwrap().is_empty(), "{r}");
    // Acknowledged, then resolved.
    for name in ["pagerduty-incident-acknowledged.json", "pagerduty-incident-resolved.json"] {
        let b = fresh(name).replace("2021-03-04T10:03:00.000Z", &at);
        let (status, r) =
            srv.raw("/v1/incidents/pagerduty", &[("x-pagerduty-signature", &good_sig(&b))], b.as_bytes()).await;
        assert_eq!(status, StatusCode::OK, "{name}: {r}");
    }
    let (_, inc) = srv.get("/v1/incidents/PBGINC1", &admin).await;
    assert_eq!(inc["status"], "resolved");
    assert_eq!(
        srv.kinds_since(size).await,
        ["incident.opened", "incident.updated", "incident.resolved"],
        "one entry per change"
    );

    // Opsgenie's documented shape, with Basic credentials.
    let mut setup2 = self::setup();
    setup2.incidents.opsgenie_credentials = vec!["breakglass:opsgenie-password-0123".into()];
    let srv2 = Server::sqlite(&setup2).await;
    let og = fixture("opsgenie-create.json");
    use base64::Engine as _;
    let basic =
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("breakglass:opsgenie-password-0123"));
    let wrong = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("breakglass:guess"));
    let (status, _) = srv2.raw("/v1/incidents/opsgenie", &[("authorization", &wrong)], og.as_bytes()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, r) = srv2.raw("/v1/incidents/opsgenie", &[("authorization", &basic)], og.as_bytes()).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["recorded"][0], "opsgenie:5c3e7d2a-9b1f-4e6a-8c2d-1f0e9a8b7c6d");
    srv.verify().await;
}

fn good_sig(body: &str) -> String {
    pd_sign(PD_SECRET, body)
}
