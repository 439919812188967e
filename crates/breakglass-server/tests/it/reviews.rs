//! Post-event reviews (issue 7): a review opens with the grant's end, its
//! timeline holds exactly what was recorded under the grant, only a
//! reviewer policy allows and who is not the grantee signs it off, and an
//! overdue review escalates and stops auto-approval.

use axum::http::StatusCode;
use breakglass_core::incident::sign_generic;
use breakglass_core::time::Clock as _;
use serde_json::{Value, json};

use crate::harness::*;

fn event(id: &str, kind: &str, grant: Option<&str>, data: Value) -> Value {
    json!({ "id": id, "kind": kind, "actor": "alice", "grant": grant, "at": T0, "data": data })
}

async fn send(srv: &Server, body: String) -> (StatusCode, Value) {
    let ts = srv.clock.now().0 / 1000;
    let sig = sign_generic(b"generic-secret-0123456789", ts, body.as_bytes());
    let ts = ts.to_string();
    srv.raw(
        "/v1/incidents/generic",
        &[("x-breakglass-timestamp", &ts), ("x-breakglass-signature", &sig)],
        body.as_bytes(),
    )
    .await
}

fn kinds(review: &Value) -> Vec<String> {
    review["timeline"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_opens_at_the_end_with_everything_done_under_the_grant_and_only_another_reviewer_signs_it() {
    let setup = Setup::new();
    let srv = Server::sqlite(&setup).await;
    let admin = srv.admin().await;
    let (_, t) = srv.post("/v1/tokens", &admin, json!({ "name": "hooks", "role": "service" })).await;
    let hooks = t["token"].as_str().unwrap().to_owned();
    let (alice, bob, dave) = (
        srv.login("alice", &setup.keys.alice).await,
        srv.login("bob", &setup.keys.bob).await,
        srv.login("dave", &setup.keys.dave).await,
    );
    let (_, g) = srv.post("/v1/grants", &alice, request_body(MAIN, "push", "30m", "INC-42 hotfix")).await;
    let id = g["id"].as_str().unwrap().to_owned();
    srv.post(&format!("/v1/grants/{id}/approve"), &bob, json!({})).await;
    // Another grant of alice's: its events are not this review's.
    let (_, other) = srv.post("/v1/grants", &alice, request_body(RELEASE, "push", "30m", "release fix")).await;
    let other = other["id"].as_str().unwrap().to_owned();

    let push = json!({ "repo": "payments/api", "ref": "refs/heads/main", "new": "4f1c2b9e8d7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e", "commit_count": 1,
        "commits": [{ "sha": "4f1c2b9e8d7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e", "files": ["src/pay.rs", "Cargo.toml"] }] });
    let gate = json!({ "scope": "pipeline:payments/api/deploy@production", "gate": "integration-tests",
        "mode": "skip", "ran": false, "outcome": "skipped" });
    for (eid, kind, grant, data) in [
        (
            "e1",
            "git.push.decision",
            Some(id.as_str()),
            json!({ "repo": "payments/api", "ref": "refs/heads/main", "decision": "accepted" }),
        ),
        ("e2", "git.push", Some(id.as_str()), push),
        ("e3", "ci.gate", Some(id.as_str()), gate),
        ("e4", "git.push", None, json!({ "repo": "payments/web", "ref": "refs/heads/dev", "new": "cd".repeat(20) })),
        ("e5", "git.push.decision", Some(other.as_str()), json!({ "decision": "refused" })),
    ] {
        let (status, r) = srv.post("/v1/events", &hooks, event(eid, kind, grant, data)).await;
        assert_eq!(status, StatusCode::OK, "{r}");
    }
    // No review while the grant runs.
    assert_eq!(srv.get(&format!("/v1/reviews/{id}"), &bob).await.0, StatusCode::NOT_FOUND);

    srv.clock.advance(31 * 60_000);
    srv.service.expire_due().await.unwrap();
    let (status, r) = srv.get(&format!("/v1/reviews/{id}"), &bob).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(
        (r["status"].as_str(), r["principal"].as_str(), r["overdue"].as_bool()),
        (Some("open"), Some("alice"), Some(false))
    );
    assert_eq!(
        kinds(&r),
        [
            "grant.requested",
            "grant.approved",
            "grant.activated",
            "git.push.decision",
            "git.push",
            "ci.gate",
            "grant.expired",
            "review.opened"
        ],
        "exactly what was done under the grant: {r}"
    );
    let push_line = &r["timeline"][4];
    assert!(push_line["summary"].as_str().unwrap().contains("2 file change(s)"), "{push_line}");
    assert_eq!(push_line["data"]["commits"][0]["files"], json!(["src/pay.rs", "Cargo.toml"]));
    let review_id = r["id"].as_str().unwrap().to_owned();

    // An event spooled during the grant and delivered after it ended is in the timeline too.
    srv.post("/v1/events", &hooks, event("e6", "ci.deploy", Some(&id), json!({ "scope": "pipeline:payments/api/deploy@production", "commit": "4f1c2b9e8d7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e" }))).await;
    assert_eq!(kinds(&srv.get(&format!("/v1/reviews/{review_id}"), &bob).await.1).last().unwrap(), "ci.deploy");

    // The grantee cannot sign it off; someone policy does not allow cannot either.
    let decision = json!({ "notes": "the hotfix matches the incident; tests skipped once", "lessons": ["keep a canary"], "follow_ups": ["PAY-1: re-run integration tests"] });
    let (status, v) = srv.post(&format!("/v1/reviews/{review_id}/approve"), &alice, decision.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    let (status, v) = srv.post(&format!("/v1/reviews/{review_id}/approve"), &dave, decision.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    let (status, v) = srv.post(&format!("/v1/reviews/{review_id}/approve"), &bob, json!({ "notes": " " })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    let before = srv.log_size().await;
    let (status, v) = srv.post(&format!("/v1/reviews/{review_id}/flag"), &bob, decision.clone()).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!((v["status"].as_str(), v["reviewer"].as_str()), (Some("flagged"), Some("bob")));
    assert_eq!(srv.kinds_since(before).await, ["review.flagged"], "sign-off is a log entry");
    let (status, _) = srv.post(&format!("/v1/reviews/{review_id}/approve"), &bob, decision).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, r) = srv.get(&format!("/v1/reviews/{review_id}"), &alice).await;
    assert_eq!(r["lessons"], json!(["keep a canary"]));
    assert_eq!(r["follow_ups"], json!(["PAY-1: re-run integration tests"]));

    // The friction figures: bob approved alice's request after 0 ms here; she held it 30 minutes.
    let (status, s) = srv.get("/v1/stats", &admin).await;
    assert_eq!(status, StatusCode::OK, "{s}");
    assert_eq!(
        (s["requested"].as_u64(), s["activated"].as_u64(), s["auto_approved"].as_u64()),
        (Some(2), Some(1), Some(0)),
        "{s}"
    );
    assert_eq!(s["active_for"]["p50_ms"], 30 * 60_000, "{s}");
    assert_eq!(s["by_principal"], json!([{ "name": "alice", "count": 1 }]));
    assert_eq!(s["by_scope"][0]["name"], MAIN);
    assert_eq!((s["reviews_flagged"].as_u64(), s["reviews_open"].as_u64()), (Some(1), Some(0)));
    let (status, _) = srv.get("/v1/stats?since=yesterday", &admin).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    srv.verify().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overdue_review_escalates_and_stops_auto_approval_until_it_is_done() {
    let mut setup = Setup::new();
    setup.incidents.generic_secrets = vec!["generic-secret-0123456789".into()];
    let srv = Server::sqlite(&setup).await;
    let admin = srv.admin().await;
    let alice = srv.login("alice", &setup.keys.alice).await;
    let incident = |id: &str| {
        json!({ "id": id, "title": "payments down", "severity": 1, "status": "triggered",
                "services": ["payments-api"], "responders": [{ "email": "alice@example.com" }] })
        .to_string()
    };
    assert_eq!(send(&srv, incident("INC-1")).await.0, StatusCode::OK);
    let (_, g) = srv.post("/v1/grants", &alice, request_body(MAIN, "push", "30m", "INC-1")).await;
    assert_eq!(g["state"], "active", "{g}");
    let id = g["id"].as_str().unwrap().to_owned();
    let (_, g) = srv.post(&format!("/v1/grants/{id}/revoke"), &alice, json!({ "reason": "fixed" })).await;
    assert_eq!(g["state"], "revoked");
    let (_, r) = srv.get(&format!("/v1/reviews/{id}"), &admin).await;
    assert_eq!(r["grant_end"], "revoked: fixed");

    // Three days later the review is overdue: escalated once, with an entry.
    srv.clock.advance(72 * 3_600_000);
    let before = srv.log_size().await;
    srv.service.expire_due().await.unwrap();
    srv.service.expire_due().await.unwrap();
    assert_eq!(srv.kinds_since(before).await, ["review.overdue"]);
    let (_, list) = srv.get("/v1/reviews?overdue=true", &admin).await;
    assert_eq!(list["reviews"].as_array().unwrap().len(), 1, "{list}");

    // A new incident would auto-approve alice, but her review is overdue: a human must approve.
    let alice = srv.login("alice", &setup.keys.alice).await;
    assert_eq!(send(&srv, incident("INC-2")).await.0, StatusCode::OK);
    let (_, g) = srv.post("/v1/grants", &alice, request_body(MAIN, "push", "30m", "INC-2")).await;
    assert_eq!(g["state"], "pending", "{g}");

    // Once bob signs the review off, the incident approves her at once again.
    let bob = srv.login("bob", &setup.keys.bob).await;
    let (status, v) = srv.post(&format!("/v1/reviews/{id}/approve"), &bob, json!({ "notes": "fine" })).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (_, g) = srv.post("/v1/grants", &alice, request_body(MAIN, "push", "30m", "INC-2 again")).await;
    assert_eq!(g["state"], "active", "{g}");
    srv.verify().await;
}
