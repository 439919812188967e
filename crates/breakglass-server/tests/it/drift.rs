//! The periodic drift check (issue 8): new findings become one `drift.found`
//! entry and one notification each, however often the check runs; findings
//! that go away become `drift.cleared`; a log rewritten behind the server is
//! found even when nothing is appended.

use axum::http::StatusCode;
use serde_json::{Value, json};

use breakglass_tlog::checkpoint::Checkpoint;
use breakglass_tlog::hash::Hash;

use crate::harness::{ORIGIN, Server, Setup, log_signer};
use crate::receiver::Receiver;

const BACKDOOR: &str = r#"@id("everyone-may-push")
permit (principal, action == Breakglass::Action::"request", resource);"#;

fn kinds(v: &Value, field: &str) -> Vec<String> {
    v[field].as_array().unwrap().iter().map(|f| f["kind"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drift_check_records_each_finding_once_notifies_and_clears_it() {
    use breakglass_server::service::config::{Channel, Target};
    let receiver = Receiver::start();
    let mut setup = Setup::new();
    setup.notify.channels = vec![Channel {
        name: "sec".into(),
        target: Target::Webhook {
            url: format!("{}/drift", receiver.url),
            secret: b"webhook-secret-0123456789".to_vec(),
        },
        events: vec![breakglass_core::notify::NotifyEvent::DriftDetected],
    }];
    let srv = Server::sqlite(&setup).await;
    let admin = srv.admin().await;
    let alice = srv.login("alice", &setup.keys.alice).await;
    let poster = breakglass_client::Poster::new(std::time::Duration::from_secs(10)).unwrap();

    // Clean: nothing found, nothing written.
    let before = srv.log_size().await;
    let (status, c) = srv.post("/v1/drift/check", &admin, json!({})).await;
    assert_eq!((status, kinds(&c, "findings")), (StatusCode::OK, Vec::<String>::new()), "{c}");
    assert_eq!(srv.log_size().await, before);
    // Only an admin runs it.
    let (status, _) = srv.post("/v1/drift/check", &alice, json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A standing backdoor appears: found, recorded once, notified once.
    std::fs::write(setup.dir.path().join("policy/backdoor.cedar"), BACKDOOR).unwrap();
    srv.service.reload("test").await.unwrap();
    let before = srv.log_size().await;
    let (_, c) = srv.post("/v1/drift/check", &admin, json!({})).await;
    assert_eq!(kinds(&c, "found"), ["policy.standing_backdoor"], "{c}");
    assert_eq!(srv.kinds_since(before).await, ["drift.found"]);
    let before = srv.log_size().await;
    let (_, c) = srv.post("/v1/drift/check", &admin, json!({})).await;
    assert_eq!((kinds(&c, "findings").len(), kinds(&c, "found").len()), (1, 0), "{c}");
    assert_eq!(srv.log_size().await, before, "a finding already open is not recorded again");
    assert_eq!(srv.service.deliver_due(&poster).await.unwrap(), 1);
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    let body: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(
        (body["event"].as_str(), body["drift"]["kind"].as_str()),
        (Some("drift_detected"), Some("policy.standing_backdoor"))
    );
    assert!(body["drift"]["fix"].as_str().unwrap().contains("policy reload"), "{body}");

    // Fixed: cleared, once.
    std::fs::remove_file(setup.dir.path().join("policy/backdoor.cedar")).unwrap();
    srv.service.reload("test").await.unwrap();
    let before = srv.log_size().await;
    let (_, c) = srv.post("/v1/drift/check", &admin, json!({})).await;
    assert_eq!((kinds(&c, "findings").len(), kinds(&c, "cleared")), (0, vec!["policy.standing_backdoor".to_owned()]));
    assert_eq!(srv.kinds_since(before).await, ["drift.cleared"]);
    let (_, c) = srv.post("/v1/drift/check", &admin, json!({})).await;
    assert_eq!(kinds(&c, "cleared").len(), 0);
    srv.verify().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_rewritten_behind_the_server_is_found_with_no_append() {
    let setup = Setup::new();
    let srv = Server::sqlite(&setup).await;
    let admin = srv.admin().await;
    let (_, c) = srv.post("/v1/drift/check", &admin, json!({})).await;
    assert_eq!(kinds(&c, "findings"), Vec::<String>::new(), "{c}");
    // Someone with the database file and the signing key replaces the
    // latest checkpoint with one of another tree of the same size.
    let db = setup.dir.path().join("breakglass.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await.unwrap();
    let size: i64 = sqlx::query_scalar("SELECT MAX(size) FROM log_checkpoints").fetch_one(&pool).await.unwrap();
    let forged =
        Checkpoint { origin: ORIGIN.into(), size: size as u64, root: Hash([0x5a; 32]) }.sign(&log_signer()).unwrap();
    sqlx::query("UPDATE log_checkpoints SET root = ?1, note = ?2 WHERE size = ?3")
        .bind(vec![0x5au8; 32])
        .bind(&forged)
        .bind(size)
        .execute(&pool)
        .await
        .unwrap();
    let (status, c) = srv.post("/v1/drift/check", &admin, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(kinds(&c, "findings"), ["log.inconsistent"], "{c}");
    assert!(c["findings"][0]["what"].as_str().unwrap().contains("not consistent"), "{c}");
    // Recording it fails closed: the ledger will not append to a rewritten log.
    assert!(c["not_recorded"].as_str().unwrap().contains("rewritten"), "{c}");
    // Without the key: the root no longer matches its signed note.
    sqlx::query("UPDATE log_checkpoints SET root = ?1 WHERE size = ?2")
        .bind(vec![0x33u8; 32])
        .bind(size)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let (status, c) = srv.post("/v1/drift/check", &admin, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(kinds(&c, "findings"), ["log.inconsistent"], "{c}");
    assert!(c["findings"][0]["what"].as_str().unwrap().contains("not what was signed"), "{c}");
}
