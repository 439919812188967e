//! Events reported by hooks (possibly spooled and delivered twice) are
//! recorded once; repositories register their hooks. (Issue 4.)

use axum::http::StatusCode;
use serde_json::json;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_is_recorded_once_whatever_the_deliveries() {
    let setup = Setup::new();
    let srv = Server::sqlite(&setup).await;
    let admin = srv.admin().await;
    let (_, t) = srv.post("/v1/tokens", &admin, json!({ "name": "hooks", "role": "service" })).await;
    let hooks = t["token"].as_str().unwrap().to_owned();
    let alice = srv.login("alice", &setup.keys.alice).await;
    let bob = srv.login("bob", &setup.keys.bob).await;
    let (_, g) = srv.post("/v1/grants", &alice, request_body(MAIN, "push", "30m", "fix")).await;
    let id = g["id"].as_str().unwrap().to_owned();
    srv.post(&format!("/v1/grants/{id}/approve"), &bob, json!({})).await;

    let event = json!({
        "id": "0123456789abcdef0123456789abcdef",
        "kind": "git.push",
        "actor": "alice",
        "grant": id,
        "at": T0,
        "data": { "repo": "payments/api", "ref": "refs/heads/main", "new": "ab".repeat(20), "commits": [] },
    });
    let before = srv.log_size().await;
    // A push that does not say what it moved is refused, and writes nothing.
    let mut vague = event.clone();
    vague["id"] = json!("vague-push");
    vague["data"] = json!({ "repo": "payments/api", "commits": [] });
    let (status, r) = srv.post("/v1/events", &hooks, vague).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("the new value"), "{r}");
    assert_eq!(srv.log_size().await, before);
    let (status, r) = srv.post("/v1/events", &hooks, event.clone()).await;
    assert_eq!((status, r["duplicate"].as_bool()), (StatusCode::OK, Some(false)), "{r}");
    let (status, r) = srv.post("/v1/events", &hooks, event.clone()).await;
    assert_eq!((status, r["duplicate"].as_bool(), r["index"].is_null()), (StatusCode::OK, Some(true), true), "{r}");
    assert_eq!(srv.kinds_since(before).await, ["git.push"]);
    let rec = srv.store.entries(before, before + 1).await.unwrap().remove(0);
    let e: serde_json::Value = serde_json::from_slice(&rec.data).unwrap();
    assert_eq!((e["grant"].as_str(), e["actor"].as_str()), (Some(id.as_str()), Some("alice")));
    assert_eq!(e["data"]["reported_by"], "hooks");

    // Refused: a user session, a reader, an unknown kind, a bad id, an unknown grant, non-object data.
    assert_eq!(srv.post("/v1/events", &alice, event.clone()).await.0, StatusCode::FORBIDDEN);
    let mut bad = event.clone();
    bad["kind"] = json!("grant.activated");
    assert_eq!(srv.post("/v1/events", &hooks, bad).await.0, StatusCode::BAD_REQUEST);
    let mut bad = event.clone();
    bad["id"] = json!("../../etc");
    assert_eq!(srv.post("/v1/events", &hooks, bad).await.0, StatusCode::BAD_REQUEST);
    let mut bad = event.clone();
    bad["id"] = json!("another");
    bad["grant"] = json!("gr_nope");
    assert_eq!(srv.post("/v1/events", &hooks, bad).await.0, StatusCode::BAD_REQUEST);
    let mut bad = event.clone();
    bad["id"] = json!("another2");
    bad["data"] = json!([1, 2]);
    assert_eq!(srv.post("/v1/events", &hooks, bad).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(srv.log_size().await, before + 1, "refusals write nothing");

    // Repositories register, update, and are listed.
    let reg = json!({
        "name": "payments/api", "protected": ["refs/heads/main"], "updaters": [], "path": "/srv/git/api.git",
        "host": "git1", "hooks": { "pre-receive": "abc" }, "installed": true,
    });
    assert_eq!(srv.post("/v1/repos", &hooks, reg.clone()).await.0, StatusCode::OK);
    assert_eq!(srv.post("/v1/repos", &hooks, reg.clone()).await.0, StatusCode::OK);
    let mut bad = reg.clone();
    bad["protected"] = json!(["not a ref"]);
    assert_eq!(srv.post("/v1/repos", &hooks, bad).await.0, StatusCode::BAD_REQUEST);
    let (_, list) = srv.get("/v1/repos", &alice).await;
    assert_eq!(list["repos"].as_array().unwrap().len(), 1);
    assert_eq!(srv.kinds_since(before + 1).await, ["git.repo.installed"], "an unchanged registration writes nothing");
    srv.verify().await;
}
