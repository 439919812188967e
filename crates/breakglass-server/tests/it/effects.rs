//! The seam for what a grant transition sets off (issue 15): an effect
//! registered beside the standard ones sees every transition (requested,
//! activated, revoked, expired by the timer), what it adds is committed in
//! the transition's own append, what it does afterwards runs once that
//! append is durable, and an effect that fails refuses the transition with
//! nothing written.

use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use breakglass_core::entry::EntryDraft;
use breakglass_core::grant::GrantState;
use breakglass_server::http::{AppState, router};
use breakglass_server::service::effects::standard;
use breakglass_server::service::kernel::{Consequences, Effect, Result, Service, ServiceError, Transition};
use breakglass_store::ledger::{Ledger, LedgerConfig};
use breakglass_store::sqlite::{OpenOptions, SqliteStore};
use serde_json::json;

use crate::harness::*;

/// What the recorder saw after each commit: (grant, before, after).
type Seen = Arc<Mutex<Vec<(String, Option<GrantState>, GrantState)>>>;

/// An effect of the kind the forge adapters will be: it adds an entry to
/// every transition and notes each one once it is durable; it can be told
/// to refuse activations (a forge that cannot apply the bypass).
struct Recorder {
    seen: Seen,
    refuse_activation: bool,
}

impl Effect for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }

    fn within(&self, _service: &Service, change: &Transition<'_>, add: &mut Consequences) -> Result<()> {
        let activates = change.grant.state == GrantState::Active && change.before != Some(GrantState::Active);
        if self.refuse_activation && activates {
            return Err(ServiceError::unavailable("the recorder refuses activations"));
        }
        let before = change.before.map(|s| s.as_str());
        add.entries.push(
            EntryDraft::new(
                "breakglass",
                "test.effect",
                json!({ "before": before, "after": change.grant.state.as_str(), "saw": change.entries.len() }),
            )
            .with_grant(&change.grant.id),
        );
        Ok(())
    }

    fn after(&self, _service: &Service, change: &Transition<'_>) {
        self.seen.lock().unwrap().push((change.grant.id.clone(), change.before, change.grant.state));
    }
}

async fn server_with(setup: &Setup, recorder: Recorder) -> Server {
    let path = setup.dir.path().join("breakglass.db");
    let store: Arc<dyn breakglass_store::LogStore> =
        Arc::new(SqliteStore::open(&path, OpenOptions { create: true, read_only: false }).await.unwrap());
    let clock = new_clock();
    let ledger = Ledger::open(store.clone(), log_signer(), clock.clone(), LedgerConfig::new(ORIGIN)).await.unwrap();
    let mut effects = standard();
    effects.push(Box::new(recorder));
    let service = Arc::new(
        Service::with_effects(ledger.clone(), store.clone(), clock.clone(), keys(), setup.config(), effects)
            .expect("service"),
    );
    let app = router(AppState { service: service.clone(), metrics: None, test_clock: None }, 64 * 1024);
    Server { service, app, ledger, store, clock }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_effect_sees_every_transition_and_commits_with_it() {
    let setup = Setup::new();
    let seen = Seen::default();
    let srv = server_with(&setup, Recorder { seen: seen.clone(), refuse_activation: false }).await;
    let (alice, bob) = (srv.login("alice", &setup.keys.alice).await, srv.login("bob", &setup.keys.bob).await);

    let before = srv.log_size().await;
    let (status, g) = srv.post("/v1/grants", &alice, request_body(MAIN, "push", "30m", "INC-42 hotfix")).await;
    assert_eq!(status, StatusCode::CREATED, "{g}");
    let id = g["id"].as_str().unwrap().to_owned();
    // The effect's entry is part of the request's own append, after its entries.
    assert_eq!(srv.kinds_since(before).await, ["grant.requested", "test.effect"]);
    assert_eq!(g["log_indexes"], json!([before, before + 1]), "one receipt covers both: {g}");

    let at = srv.log_size().await;
    let (status, g) = srv.post(&format!("/v1/grants/{id}/approve"), &bob, json!({})).await;
    assert_eq!((status, g["state"].as_str()), (StatusCode::OK, Some("active")), "{g}");
    assert_eq!(srv.kinds_since(at).await, ["grant.approved", "grant.activated", "test.effect"]);

    // Ending an active grant: the standard review effect and this one, in one append.
    let at = srv.log_size().await;
    let (status, g) = srv.post(&format!("/v1/grants/{id}/revoke"), &alice, json!({ "reason": "done" })).await;
    assert_eq!(status, StatusCode::OK, "{g}");
    assert_eq!(srv.kinds_since(at).await, ["grant.revoked", "review.opened", "test.effect"]);

    // The timer's transitions go through the same seam.
    let (_, g) = srv.post("/v1/grants", &alice, request_body(MAIN, "push", "10m", "second")).await;
    let second = g["id"].as_str().unwrap().to_owned();
    srv.post(&format!("/v1/grants/{second}/approve"), &bob, json!({})).await;
    srv.clock.advance(10 * 60_000);
    let at = srv.log_size().await;
    assert_eq!(srv.service.expire_due().await.unwrap(), 1);
    assert_eq!(srv.kinds_since(at).await, ["grant.expired", "review.opened", "test.effect"]);

    use GrantState::*;
    let seen = seen.lock().unwrap().clone();
    let want = [
        (id.clone(), None, Pending),
        (id.clone(), Some(Pending), Active),
        (id, Some(Active), Revoked),
        (second.clone(), None, Pending),
        (second.clone(), Some(Pending), Active),
        (second, Some(Active), Expired),
    ];
    assert_eq!(seen, want);
    srv.verify().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_effect_that_fails_refuses_the_transition_and_nothing_is_written() {
    let setup = Setup::new();
    let seen = Seen::default();
    let srv = server_with(&setup, Recorder { seen: seen.clone(), refuse_activation: true }).await;
    let (alice, bob) = (srv.login("alice", &setup.keys.alice).await, srv.login("bob", &setup.keys.bob).await);
    let (_, g) = srv.post("/v1/grants", &alice, request_body(MAIN, "push", "30m", "INC-42 hotfix")).await;
    let id = g["id"].as_str().unwrap().to_owned();

    let at = srv.log_size().await;
    let (status, e) = srv.post(&format!("/v1/grants/{id}/approve"), &bob, json!({})).await;
    assert_eq!((status, e["error"]["code"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("unavailable")), "{e}");
    assert_eq!(srv.log_size().await, at, "neither the approval nor anything an effect would add");
    let (_, g) = srv.get(&format!("/v1/grants/{id}"), &alice).await;
    assert_eq!(g["state"], "pending");
    // Only the request's commit ran the effects' afterwards.
    assert_eq!(seen.lock().unwrap().len(), 1);
    srv.verify().await;
}
