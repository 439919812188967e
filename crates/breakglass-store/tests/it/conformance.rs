//! The storage conformance suite: every test here runs against every
//! backend — SQLite in a temp dir always, and PostgreSQL when
//! `BREAKGLASS_TEST_PG_URL` names a server (each test gets a database of its
//! own, dropped afterwards). The README's test command starts a throwaway
//! PostgreSQL cluster and sets `BREAKGLASS_TEST_REQUIRE_PG=1`, so there a
//! missing PostgreSQL is a failure, not a skip.

use std::sync::Arc;

use breakglass_entry::entry::Entry;
use breakglass_entry::time::{Clock, Timestamp};
use breakglass_store::ledger::AppendError;
use breakglass_store::ledger::{Ledger, LedgerConfig};
use breakglass_store::postgres::PostgresStore;
use breakglass_store::reader::LogReader;
use breakglass_store::sqlite::{OpenOptions, SqliteStore};
use breakglass_store::verify::{VerifyOptions, verify_log};
use breakglass_store::{
    EntryRecord, HeadState, LogStore, Mutation, ObjectFilter, StateObject, StoreError, StoredCheckpoint,
};
use breakglass_testkit::pg::PgDatabase;
use breakglass_tlog::checkpoint::Checkpoint;
use breakglass_tlog::hash::{empty_root, leaf_hash};
use breakglass_tlog::proof::{verify_consistency, verify_inclusion};
use breakglass_tlog::tree::MemoryTree;

use crate::harness::{ManualClock, ORIGIN, T0, draft, signer};

/// One database of one backend, which can be opened several times (as
/// several processes or servers would).
enum TestDb {
    Sqlite(tempfile::TempDir),
    Postgres(PgDatabase),
}

impl TestDb {
    fn kind(&self) -> &'static str {
        match self {
            TestDb::Sqlite(_) => "sqlite",
            TestDb::Postgres(_) => "postgres",
        }
    }

    async fn open(&self) -> Arc<dyn LogStore> {
        match self {
            TestDb::Sqlite(dir) => Arc::new(
                SqliteStore::open(&dir.path().join("log.db"), OpenOptions { create: true, read_only: false })
                    .await
                    .expect("open sqlite"),
            ),
            TestDb::Postgres(db) => Arc::new(PostgresStore::open(&db.url).await.expect("open postgres")),
        }
    }

    async fn drop_db(self) {
        if let TestDb::Postgres(db) = self {
            db.drop_db().await;
        }
    }
}

/// Every backend available to this run, each with a fresh database.
async fn backends() -> Vec<TestDb> {
    let mut out = vec![TestDb::Sqlite(tempfile::tempdir().expect("temp dir"))];
    if let Some(db) = PgDatabase::create("bg_test").await {
        out.push(TestDb::Postgres(db));
    }
    out
}

fn reader(store: &Arc<dyn LogStore>) -> LogReader {
    LogReader::new(store.clone(), ORIGIN, signer().verifier())
}

async fn ledger(store: &Arc<dyn LogStore>, clock: &Arc<ManualClock>) -> Ledger {
    Ledger::open(store.clone(), signer(), clock.clone() as Arc<dyn Clock>, LedgerConfig::new(ORIGIN))
        .await
        .expect("open ledger")
}

/// Records and a signed checkpoint for entries `tree.size() .. tree.size() + n`, built by hand.
fn batch(tree: &mut MemoryTree, n: u64, tag: &str) -> (Vec<EntryRecord>, StoredCheckpoint) {
    let signer = signer();
    let mut records = Vec::new();
    for _ in 0..n {
        let index = tree.size();
        let mut d = draft(index);
        d.data["tag"] = tag.into();
        let data = Entry::sequence(d, index, Timestamp(T0)).encode().unwrap();
        let before = tree.stored().len();
        tree.append(leaf_hash(&data));
        records.push(EntryRecord { index, data, hashes: tree.stored()[before..].to_vec() });
    }
    let cp = Checkpoint { origin: ORIGIN.into(), size: tree.size(), root: tree.root() };
    let note = cp.sign(&signer).unwrap();
    (records, StoredCheckpoint { size: cp.size, root: cp.root, note })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_store_has_an_empty_head() {
    for db in backends().await {
        let store = db.open().await;
        let kind = db.kind();
        assert_eq!(store.head_state().await.unwrap(), HeadState { size: 0, checkpoint: None }, "{kind}");
        assert_eq!(store.head_size().await.unwrap(), 0, "{kind}");
        assert!(store.head().await.unwrap().is_none(), "{kind}");
        assert!(store.entries(0, 10).await.unwrap().is_empty(), "{kind}");
        assert!(store.checkpoints(0, 10).await.unwrap().is_empty(), "{kind}");
        assert!(store.read_hashes(&[]).await.unwrap().is_empty(), "{kind}");
        assert!(matches!(store.read_hashes(&[0]).await, Err(StoreError::Corrupt(_))), "{kind}");
        // Opening again (a second server, a restart) re-applies no migration and loses nothing.
        let again = db.open().await;
        assert_eq!(again.head_size().await.unwrap(), 0, "{kind}");
        db.drop_db().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_is_a_compare_and_swap_on_size_and_root() {
    for db in backends().await {
        let kind = db.kind();
        let store = db.open().await;
        let mut tree = MemoryTree::default();
        let (first, cp3) = batch(&mut tree, 3, "a");
        store.append(0, &empty_root(), &first, &cp3).await.unwrap();
        // The same swap again: the head moved, nothing changes.
        let mut other = MemoryTree::default();
        let (rival, rival_cp) = batch(&mut other, 3, "b");
        assert!(matches!(store.append(0, &empty_root(), &rival, &rival_cp).await, Err(StoreError::HeadMoved { .. })));
        // The right size with the wrong root (a log regrown to the same size elsewhere).
        let mut next_tree = tree.clone();
        let (second, cp5) = batch(&mut next_tree, 2, "a");
        let wrong_root = rival_cp.root;
        assert!(
            matches!(store.append(3, &wrong_root, &second, &cp5).await, Err(StoreError::HeadMoved { .. })),
            "{kind}"
        );
        assert_eq!(store.head_state().await.unwrap(), HeadState { size: 3, checkpoint: Some(cp3.clone()) }, "{kind}");
        store.append(3, &cp3.root, &second, &cp5).await.unwrap();

        // Everything reads back exactly.
        let all: Vec<EntryRecord> = first.iter().chain(&second).cloned().collect();
        assert_eq!(store.entries(0, 100).await.unwrap(), all, "{kind}");
        assert_eq!(store.entries(2, 4).await.unwrap(), all[2..4].to_vec(), "{kind}");
        let hashes: Vec<(u64, Vec<_>)> = all.iter().map(|r| (r.index, r.hashes.clone())).collect();
        assert_eq!(store.entry_hashes(0, 100).await.unwrap(), hashes, "{kind}");
        let sizes: Vec<u64> = store.checkpoints(0, 10).await.unwrap().iter().map(|c| c.size).collect();
        assert_eq!(sizes, vec![3, 5], "{kind}");
        assert_eq!(store.checkpoints(3, 10).await.unwrap(), vec![cp5.clone()], "{kind}");
        assert_eq!(store.checkpoint(3).await.unwrap(), Some(cp3), "{kind}");
        assert_eq!(store.checkpoint(4).await.unwrap(), None, "{kind}");
        assert_eq!(store.head().await.unwrap(), Some(cp5.clone()), "{kind}");
        let all_indexes: Vec<u64> = (0..next_tree.stored().len() as u64).rev().collect();
        let want: Vec<_> = all_indexes.iter().map(|&i| next_tree.stored()[i as usize]).collect();
        assert_eq!(store.read_hashes(&all_indexes).await.unwrap(), want, "{kind}");
        db.drop_db().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_exactly_one_wins() {
    for db in backends().await {
        let kind = db.kind();
        let mut tasks = Vec::new();
        for w in 0..6 {
            let store = db.open().await;
            tasks.push(tokio::spawn(async move {
                let mut tree = MemoryTree::default();
                let (records, cp) = batch(&mut tree, 4, &format!("writer-{w}"));
                store.append(0, &empty_root(), &records, &cp).await.map(|()| cp)
            }));
        }
        let mut winners = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                Ok(cp) => winners.push(cp),
                Err(StoreError::HeadMoved { expected: 0 }) => {}
                Err(e) => panic!("{kind}: a losing writer must see HeadMoved, not {e}"),
            }
        }
        assert_eq!(winners.len(), 1, "{kind}: exactly one writer must win");
        let store = db.open().await;
        assert_eq!(store.head().await.unwrap(), Some(winners.remove(0)), "{kind}");
        assert_eq!(store.entries(0, 100).await.unwrap().len(), 4, "{kind}");
        db.drop_db().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_works_the_same_on_every_backend() {
    for db in backends().await {
        let kind = db.kind();
        let store = db.open().await;
        let clock = ManualClock::new(T0);
        let led = ledger(&store, &clock).await;
        let tasks: Vec<_> = (0..8u64)
            .map(|w| {
                let led = led.clone();
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    for k in 0..40 {
                        got.push(led.append(draft(w * 1000 + k)).await.unwrap().index);
                    }
                    got
                })
            })
            .collect();
        let mut indexes = Vec::new();
        for t in tasks {
            indexes.extend(t.await.unwrap());
        }
        indexes.sort_unstable();
        assert_eq!(indexes, (0..320).collect::<Vec<_>>(), "{kind}");
        let r = reader(&store);
        let head = r.head().await.unwrap();
        assert_eq!(head.size, 320, "{kind}");
        for (i, n) in [(0u64, 1u64), (5, 320), (319, 320), (100, 257)] {
            let proof = r.prove_inclusion(i, n).await.unwrap();
            let leaf = store.entries(i, i + 1).await.unwrap()[0].hashes[0];
            verify_inclusion(i, n, &leaf.0, &proof, &r.tree_hash(n).await.unwrap().0).unwrap();
        }
        for (m, n) in [(1u64, 320u64), (64, 200), (199, 320)] {
            let proof = r.prove_consistency(m, n).await.unwrap();
            verify_consistency(m, n, &r.tree_hash(m).await.unwrap().0, &r.tree_hash(n).await.unwrap().0, &proof)
                .unwrap();
        }
        let report = verify_log(&r, VerifyOptions::default()).await.unwrap();
        assert_eq!(report.size, 320, "{kind}");
        led.shutdown().await;
        // A restart continues where the log ends.
        let store = db.open().await;
        let led = ledger(&store, &clock).await;
        assert_eq!(led.append(draft(9999)).await.unwrap().index, 320, "{kind}");
        led.shutdown().await;
        db.drop_db().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_database_never_fork_the_log() {
    for db in backends().await {
        let kind = db.kind();
        let clock = ManualClock::new(T0);
        let (a, b) = (ledger(&db.open().await, &clock).await, ledger(&db.open().await, &clock).await);
        let mut tasks = Vec::new();
        for (name, led) in [("a", a.clone()), ("b", b.clone())] {
            for w in 0..4u64 {
                let led = led.clone();
                tasks.push(tokio::spawn(async move {
                    let mut got = Vec::new();
                    for k in 0..25 {
                        let mut d = draft(w * 100 + k);
                        d.data["server"] = name.into();
                        got.push(led.append(d).await.unwrap().index);
                    }
                    got
                }));
            }
        }
        let mut indexes = Vec::new();
        for t in tasks {
            indexes.extend(t.await.unwrap());
        }
        indexes.sort_unstable();
        assert_eq!(indexes, (0..200).collect::<Vec<_>>(), "{kind}: every index handed out once");
        a.shutdown().await;
        b.shutdown().await;
        let store = db.open().await;
        let report = verify_log(&reader(&store), VerifyOptions::default()).await.unwrap();
        assert_eq!(report.size, 200, "{kind}");
        db.drop_db().await;
    }
}

fn grant_mutation(id: &str, expected_version: u64, status: &str, owner: &str, due: Option<i64>) -> Mutation {
    Mutation {
        kind: "grant".into(),
        id: id.into(),
        expected_version,
        status: status.into(),
        owner: owner.into(),
        due,
        body: format!("{{\"id\":\"{id}\",\"status\":\"{status}\"}}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_mutations_commit_with_their_entries_by_compare_and_swap() {
    for db in backends().await {
        let kind = db.kind();
        let store = db.open().await;
        let mut tree = MemoryTree::default();
        let (first, cp1) = batch(&mut tree, 2, "create");
        let create = grant_mutation("g1", 0, "pending", "alice", Some(T0 + 1000));
        store.append_with(0, &empty_root(), &first, &cp1, &[(create.clone(), 0..2)]).await.unwrap();
        let got = store.object("grant", "g1").await.unwrap().expect("created");
        assert_eq!(
            (got.version, got.status.as_str(), got.owner.as_str(), got.due),
            (1, "pending", "alice", Some(T0 + 1000))
        );
        assert_eq!(store.object_log("grant", "g1").await.unwrap(), vec![0, 1], "{kind}");

        // Creating it again conflicts, and nothing of that append is committed.
        let mut rival_tree = tree.clone();
        let (rival, rival_cp) = batch(&mut rival_tree, 1, "dup");
        let err = store.append_with(2, &cp1.root, &rival, &rival_cp, &[(create, 2..3)]).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict { mutation: 0, .. }), "{kind}: {err}");
        assert_eq!(store.head_size().await.unwrap(), 2, "{kind}: a conflict commits no entry");

        // An update at the current version succeeds; a stale one conflicts,
        // even when another mutation before it in the same append was fine.
        let (second, cp2) = batch(&mut tree, 1, "activate");
        let activate = grant_mutation("g1", 1, "active", "alice", Some(T0 + 5000));
        store.append_with(2, &cp1.root, &second, &cp2, &[(activate, 2..3)]).await.unwrap();
        let mut stale_tree = tree.clone();
        let (third, cp3) = batch(&mut stale_tree, 1, "stale");
        let other = grant_mutation("g2", 0, "pending", "bob", Some(T0 + 2000));
        let stale = grant_mutation("g1", 1, "revoked", "alice", None);
        let err = store.append_with(3, &cp2.root, &third, &cp3, &[(other, 3..4), (stale, 3..4)]).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict { mutation: 1, .. }), "{kind}: {err}");
        assert!(store.object("grant", "g2").await.unwrap().is_none(), "{kind}: rolled back as a whole");
        assert_eq!(store.object("grant", "g1").await.unwrap().unwrap().status, "active", "{kind}");
        assert_eq!(store.head_size().await.unwrap(), 3, "{kind}");

        // Listing and due times.
        let (fourth, cp4) = batch(&mut tree, 1, "more");
        let g3 = grant_mutation("g3", 0, "pending", "bob", Some(T0 + 3000));
        store.append_with(3, &cp2.root, &fourth, &cp4, &[(g3, 3..4)]).await.unwrap();
        let all = store.objects("grant", &ObjectFilter::default()).await.unwrap();
        assert_eq!(all.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(), ["g3", "g1"], "{kind}");
        let bobs = ObjectFilter { owner: Some("bob".into()), ..Default::default() };
        assert_eq!(store.objects("grant", &bobs).await.unwrap().len(), 1, "{kind}");
        let active = ObjectFilter { statuses: vec!["active".into()], ..Default::default() };
        assert_eq!(store.objects("grant", &active).await.unwrap()[0].id, "g1", "{kind}");
        assert_eq!(store.next_due("grant", &["active", "pending"]).await.unwrap(), Some(T0 + 3000), "{kind}");
        assert_eq!(store.next_due("grant", &["active"]).await.unwrap(), Some(T0 + 5000), "{kind}");
        assert_eq!(store.next_due("token", &["active"]).await.unwrap(), None, "{kind}");
        let due = store.due_objects("grant", &["active", "pending"], T0 + 4000, 10).await.unwrap();
        assert_eq!(due.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(), ["g3"], "{kind}");
        let due = store.due_objects("grant", &["active", "pending"], T0 + 5000, 10).await.unwrap();
        assert_eq!(due.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(), ["g3", "g1"], "{kind}");
        db.drop_db().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflicting_request_is_refused_alone_and_two_servers_never_both_win() {
    for db in backends().await {
        let kind = db.kind();
        let clock = ManualClock::new(T0);
        let (a, b) = (ledger(&db.open().await, &clock).await, ledger(&db.open().await, &clock).await);
        a.append_with(vec![draft(1)], vec![grant_mutation("g", 0, "pending", "alice", None)]).await.unwrap();
        // Many racers, on two servers, all try to move version 1 on; exactly
        // one wins, and every loser's entry is absent from the log.
        let mut tasks = Vec::new();
        for k in 0..16u64 {
            let led = if k % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(async move {
                let mut d = draft(100 + k);
                d.data["racer"] = k.into();
                let res = led.append_with(vec![d], vec![grant_mutation("g", 1, "active", "alice", None)]).await;
                // An unrelated append in the same batches is never refused.
                led.append(draft(200 + k)).await.unwrap();
                res
            }));
        }
        let mut wins = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => wins += 1,
                Err(AppendError::Conflict { kind: k, id }) => assert_eq!((k.as_str(), id.as_str()), ("grant", "g")),
                Err(e) => panic!("{kind}: unexpected {e}"),
            }
        }
        assert_eq!(wins, 1, "{kind}: exactly one racer moves the object");
        a.shutdown().await;
        b.shutdown().await;
        let store = db.open().await;
        assert_eq!(store.object("grant", "g").await.unwrap().unwrap().version, 2, "{kind}");
        let report = verify_log(&reader(&store), VerifyOptions::default()).await.unwrap();
        assert_eq!(report.size, 1 + 1 + 16, "{kind}: one creation, one winner, sixteen unrelated entries");
        assert_eq!(store.object_log("grant", "g").await.unwrap().len(), 2, "{kind}");
        db.drop_db().await;
    }
}

/// A change to a notification's delivery state: bookkeeping, not an audit event.
fn delivery(id: &str, expected_version: u64, status: &str, due: Option<i64>) -> Mutation {
    Mutation {
        kind: "notification".into(),
        id: id.into(),
        expected_version,
        status: status.into(),
        owner: "alice".into(),
        due,
        body: format!("{{\"id\":\"{id}\",\"status\":\"{status}\",\"attempt\":{expected_version}}}"),
    }
}

/// The object `m` leaves behind when it applies.
fn applied(m: &Mutation) -> StateObject {
    StateObject {
        kind: m.kind.clone(),
        id: m.id.clone(),
        version: m.new_version(),
        status: m.status.clone(),
        owner: m.owner.clone(),
        due: m.due,
        body: m.body.clone(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_objects_is_all_or_nothing_by_compare_and_swap() {
    for db in backends().await {
        let kind = db.kind();
        let store = db.open().await;
        let (n1, n2) = (delivery("n1", 0, "pending", Some(T0 + 1000)), delivery("n2", 0, "pending", None));
        store.update_objects(&[n1.clone(), n2.clone()]).await.unwrap();
        assert_eq!(store.object("notification", "n1").await.unwrap(), Some(applied(&n1)), "{kind}");
        assert_eq!(store.object("notification", "n2").await.unwrap(), Some(applied(&n2)), "{kind}");

        // An update at the current version replaces every field and adds one to the version.
        let mut retry = delivery("n1", 1, "pending", Some(T0 + 2000));
        retry.owner = "bob".into();
        store.update_objects(std::slice::from_ref(&retry)).await.unwrap();
        let n1_now = applied(&retry);
        assert_eq!(store.object("notification", "n1").await.unwrap(), Some(n1_now.clone()), "{kind}");

        // A stale version conflicts, naming it, and the mutations before it
        // in the same call (a create, a valid update) are not applied either.
        let n3 = delivery("n3", 0, "pending", None);
        let n2_sent = delivery("n2", 1, "sent", None);
        let stale = delivery("n1", 1, "failed", None);
        let err = store.update_objects(&[n3, n2_sent, stale]).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Conflict { mutation: 2, kind: k, id, expected_version: 1 }
                if k == "notification" && id == "n1"),
            "{kind}: {err}"
        );
        assert_eq!(store.object("notification", "n3").await.unwrap(), None, "{kind}: rolled back as a whole");
        assert_eq!(store.object("notification", "n2").await.unwrap(), Some(applied(&n2)), "{kind}");
        assert_eq!(store.object("notification", "n1").await.unwrap(), Some(n1_now.clone()), "{kind}");

        // Creating an object that exists conflicts; so does updating one that does not,
        // or one at a version it has not reached.
        for (bad, what) in [
            (delivery("n1", 0, "pending", None), "an existing id"),
            (delivery("n9", 1, "pending", None), "a missing object"),
            (delivery("n1", 3, "pending", None), "a future version"),
        ] {
            let err = store.update_objects(&[bad]).await.unwrap_err();
            assert!(matches!(err, StoreError::Conflict { mutation: 0, .. }), "{kind}: {what}: {err}");
        }
        assert_eq!(store.object("notification", "n1").await.unwrap(), Some(n1_now), "{kind}");
        assert_eq!(store.object("notification", "n9").await.unwrap(), None, "{kind}");

        // An empty list is a no-op; the connection is still usable after every conflict.
        store.update_objects(&[]).await.unwrap();
        store.update_objects(&[delivery("n2", 1, "sent", None)]).await.unwrap();
        assert_eq!(store.object("notification", "n2").await.unwrap().unwrap().version, 2, "{kind}");
        db.drop_db().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_objects_writes_nothing_to_the_log() {
    for db in backends().await {
        let kind = db.kind();
        let store = db.open().await;
        // On an empty log.
        store.update_objects(&[delivery("n1", 0, "pending", Some(T0))]).await.unwrap();
        assert_eq!(store.head_state().await.unwrap(), HeadState { size: 0, checkpoint: None }, "{kind}");
        assert!(store.entries(0, 100).await.unwrap().is_empty(), "{kind}");

        // On a log with entries, for objects created both ways.
        let clock = ManualClock::new(T0);
        let led = ledger(&store, &clock).await;
        led.append_with(vec![draft(1), draft(2)], vec![grant_mutation("g1", 0, "pending", "alice", None)])
            .await
            .unwrap();
        let head = store.head_state().await.unwrap();
        let entries = store.entries(0, 100).await.unwrap();
        let checkpoints = store.checkpoints(0, 100).await.unwrap();
        assert_eq!(store.object_log("grant", "g1").await.unwrap(), vec![0, 1], "{kind}");
        store
            .update_objects(&[
                delivery("n1", 1, "pending", Some(T0 + 1000)),
                delivery("n2", 0, "pending", None),
                grant_mutation("g1", 1, "pending", "alice", Some(T0 + 60_000)),
            ])
            .await
            .unwrap();
        assert_eq!(store.head_state().await.unwrap(), head, "{kind}: size and root unchanged");
        assert_eq!(store.entries(0, 100).await.unwrap(), entries, "{kind}");
        assert_eq!(store.checkpoints(0, 100).await.unwrap(), checkpoints, "{kind}");
        assert_eq!(store.object_log("grant", "g1").await.unwrap(), vec![0, 1], "{kind}: links unchanged");
        assert!(store.object_log("notification", "n1").await.unwrap().is_empty(), "{kind}");
        assert!(store.object_log("notification", "n2").await.unwrap().is_empty(), "{kind}");

        // The ledger, which knows the head it last wrote, carries on undisturbed.
        assert_eq!(led.append(draft(3)).await.unwrap().index, 2, "{kind}");
        led.shutdown().await;
        let report = verify_log(&reader(&store), VerifyOptions::default()).await.unwrap();
        assert_eq!(report.size, 3, "{kind}");
        db.drop_db().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_with_and_update_objects_continue_each_others_versions() {
    for db in backends().await {
        let kind = db.kind();
        let store = db.open().await;
        let clock = ManualClock::new(T0);
        let led = ledger(&store, &clock).await;
        let version = |store: Arc<dyn LogStore>, id: &'static str| async move {
            store.object("notification", id).await.unwrap().expect("exists").version
        };

        // Created by an append, then moved on without one, then by an append again.
        let created = led.append_with(vec![draft(1)], vec![delivery("a", 0, "pending", None)]).await.unwrap();
        store.update_objects(&[delivery("a", 1, "pending", Some(T0 + 10))]).await.unwrap();
        assert_eq!(version(store.clone(), "a").await, 2, "{kind}");
        let stale = led.append_with(vec![draft(2)], vec![delivery("a", 1, "failed", None)]).await;
        assert!(matches!(stale, Err(AppendError::Conflict { .. })), "{kind}: {stale:?}");
        let failed = led.append_with(vec![draft(3)], vec![delivery("a", 2, "failed", None)]).await.unwrap();
        assert_eq!(
            store.object("notification", "a").await.unwrap(),
            Some(applied(&delivery("a", 2, "failed", None))),
            "{kind}"
        );
        assert_eq!(store.object_log("notification", "a").await.unwrap(), vec![created.index, failed.index], "{kind}");

        // Created without an append, then moved on by one, then without one again.
        store.update_objects(&[delivery("b", 0, "pending", None)]).await.unwrap();
        let err = store.update_objects(&[delivery("b", 0, "pending", None)]).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict { .. }), "{kind}: {err}");
        let sent = led.append_with(vec![draft(4)], vec![delivery("b", 1, "sent", None)]).await.unwrap();
        let err = store.update_objects(&[delivery("b", 1, "pending", None)]).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict { .. }), "{kind}: a stale version after an append: {err}");
        store.update_objects(&[delivery("b", 2, "acknowledged", None)]).await.unwrap();
        assert_eq!(version(store.clone(), "b").await, 3, "{kind}");
        assert_eq!(store.object_log("notification", "b").await.unwrap(), vec![sent.index], "{kind}");
        led.shutdown().await;
        db.drop_db().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_objects_see_due_times_set_by_update_objects() {
    for db in backends().await {
        let kind = db.kind();
        let store = db.open().await;
        let ids = |objects: Vec<StateObject>| objects.into_iter().map(|o| o.id).collect::<Vec<_>>();
        store
            .update_objects(&[
                delivery("n1", 0, "pending", Some(T0 + 1000)),
                delivery("n2", 0, "pending", Some(T0 + 3000)),
                delivery("n3", 0, "pending", None),
            ])
            .await
            .unwrap();
        assert_eq!(store.next_due("notification", &["pending"]).await.unwrap(), Some(T0 + 1000), "{kind}");
        assert_eq!(
            ids(store.due_objects("notification", &["pending"], T0 + 2000, 10).await.unwrap()),
            ["n1"],
            "{kind}"
        );

        // A failed attempt backs off: the next attempt is later.
        store.update_objects(&[delivery("n1", 1, "pending", Some(T0 + 5000))]).await.unwrap();
        assert_eq!(store.next_due("notification", &["pending"]).await.unwrap(), Some(T0 + 3000), "{kind}");
        assert!(store.due_objects("notification", &["pending"], T0 + 2000, 10).await.unwrap().is_empty(), "{kind}");
        assert_eq!(
            ids(store.due_objects("notification", &["pending"], T0 + 5000, 10).await.unwrap()),
            ["n2", "n1"],
            "{kind}"
        );

        // A final failure is no longer due; an object that gains a due time becomes due.
        store
            .update_objects(&[delivery("n2", 1, "failed", None), delivery("n3", 1, "pending", Some(T0 + 100))])
            .await
            .unwrap();
        assert_eq!(store.next_due("notification", &["pending"]).await.unwrap(), Some(T0 + 100), "{kind}");
        assert_eq!(store.next_due("notification", &["failed"]).await.unwrap(), None, "{kind}");
        let due = store.due_objects("notification", &["pending", "failed"], T0 + 10_000, 10).await.unwrap();
        assert_eq!(ids(due), ["n3", "n1"], "{kind}");
        assert_eq!(
            ids(store.due_objects("notification", &["pending"], T0 + 10_000, 1).await.unwrap()),
            ["n3"],
            "{kind}"
        );
        db.drop_db().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_update_objects_and_appends_exactly_one_wins() {
    for db in backends().await {
        let kind = db.kind();
        let clock = ManualClock::new(T0);
        let (a, b) = (ledger(&db.open().await, &clock).await, ledger(&db.open().await, &clock).await);
        a.append_with(vec![draft(1)], vec![delivery("n", 0, "pending", None)]).await.unwrap();
        // Half the racers move version 1 on with an append (on two servers),
        // half without one (each through a store of its own).
        let mut tasks = Vec::new();
        for k in 0..12u64 {
            if k % 2 == 0 {
                let status = format!("append-{k}");
                let led = if k % 4 == 0 { a.clone() } else { b.clone() };
                tasks.push(tokio::spawn(async move {
                    match led.append_with(vec![draft(100 + k)], vec![delivery("n", 1, &status, None)]).await {
                        Ok(_) => true,
                        Err(AppendError::Conflict { .. }) => false,
                        Err(e) => panic!("racer {k}: unexpected {e}"),
                    }
                }));
            } else {
                let status = format!("update-{k}");
                let store = db.open().await;
                tasks.push(tokio::spawn(async move {
                    match store.update_objects(&[delivery("n", 1, &status, None)]).await {
                        Ok(()) => true,
                        Err(StoreError::Conflict { mutation: 0, .. }) => false,
                        Err(e) => panic!("racer {k}: unexpected {e}"),
                    }
                }));
            }
        }
        let mut wins = 0;
        for t in tasks {
            wins += usize::from(t.await.unwrap());
        }
        assert_eq!(wins, 1, "{kind}: exactly one racer moves the object");
        a.shutdown().await;
        b.shutdown().await;
        let store = db.open().await;
        let n = store.object("notification", "n").await.unwrap().unwrap();
        assert_eq!(n.version, 2, "{kind}");
        // The winner's entry is in the log if and only if it was an append.
        let size = verify_log(&reader(&store), VerifyOptions::default()).await.unwrap().size;
        let links = store.object_log("notification", "n").await.unwrap();
        if n.status.starts_with("append-") {
            assert_eq!((size, links), (2, vec![0, 1]), "{kind}");
        } else {
            assert_eq!((size, links), (1, vec![0]), "{kind}");
        }
        db.drop_db().await;
    }
}
