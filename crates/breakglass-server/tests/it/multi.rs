//! Two servers over one PostgreSQL database: concurrent approvals and
//! expiries never activate or expire a grant twice, and the log stays one
//! consistent log. (Issue 3.) Skipped without `BREAKGLASS_TEST_PG_URL`
//! (the README's test command always sets it, and requires it).

use axum::http::StatusCode;
use breakglass_testkit::pg::PgDatabase;
use serde_json::json;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_never_double_activate_or_double_expire() {
    let Some(db) = PgDatabase::create("bg_srv").await else { return };
    let setup = Setup::new();
    let clock = new_clock();
    let a = Server::open(&setup, pg_store(&db.url).await, clock.clone()).await;
    let b = Server::open(&setup, pg_store(&db.url).await, clock.clone()).await;
    let alice = a.login("alice", &setup.keys.alice).await;
    // A session made on one server works on the other: they share the database.
    let bob = b.login("bob", &setup.keys.bob).await;
    let carol = a.login("carol", &setup.keys.carol).await;

    let mut ids = Vec::new();
    for k in 0..8 {
        let (status, g) = a.post("/v1/grants", &alice, request_body(MAIN, "push", "10m", &format!("fix {k}"))).await;
        assert_eq!(status, StatusCode::CREATED, "{g}");
        ids.push(g["id"].as_str().unwrap().to_owned());
    }
    // Bob (on b) and carol (on a) approve every one-approval grant at once.
    let mut tasks = Vec::new();
    for id in &ids {
        for (srv, token) in [(&a, &carol), (&b, &bob)] {
            let (app, path, token) = (srv.app.clone(), format!("/v1/grants/{id}/approve"), token.clone());
            tasks.push(tokio::spawn(async move {
                let req = axum::http::Request::post(path)
                    .header("authorization", format!("Bearer {token}"))
                    .header("content-type", "application/json")
                    .body(axum::body::Body::from("{}"))
                    .unwrap();
                tower::ServiceExt::oneshot(app, req).await.unwrap().status()
            }));
        }
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), ids.len(), "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == StatusCode::OK || *s == StatusCode::CONFLICT), "{statuses:?}");

    // Both servers' timers run at once after the expiry.
    clock.advance(10 * 60_000 + 1);
    let (ea, eb) = tokio::join!(a.service.expire_due(), b.service.expire_due());
    assert_eq!(ea.unwrap() + eb.unwrap(), ids.len(), "each grant expires exactly once");

    let entries = a.store.entries(0, u64::MAX).await.unwrap();
    let mut per_grant = std::collections::HashMap::<String, Vec<String>>::new();
    for r in &entries {
        let e: serde_json::Value = serde_json::from_slice(&r.data).unwrap();
        if let Some(g) = e["grant"].as_str() {
            per_grant.entry(g.to_owned()).or_default().push(e["kind"].as_str().unwrap().to_owned());
        }
    }
    for id in &ids {
        assert_eq!(
            per_grant[id],
            // One review each, opened with the one expiry (issue 7).
            ["grant.requested", "grant.approved", "grant.activated", "grant.expired", "review.opened"],
            "grant {id}"
        );
    }
    let (_, g) = b.get(&format!("/v1/grants/{}", ids[0]), &bob).await;
    assert_eq!(g["state"], "expired");
    assert_eq!(a.verify().await, b.verify().await);
    a.ledger.clone().shutdown().await;
    b.ledger.clone().shutdown().await;
    let _ = json!({});
    drop((a, b));
    db.drop_db().await;
}
