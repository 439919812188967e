//! The ledger: concurrent appends, receipts, proofs, refused drafts, time,
//! and two ledgers appending to one database.

use std::collections::{BTreeMap, HashSet};

use breakglass_entry::entry::{Entry, EntryDraft, MAX_ENTRY_BYTES};
use breakglass_entry::time::Timestamp;
use breakglass_store::ledger::{AppendError, Ledger, Receipt};
use breakglass_store::reader::LogReader;
use breakglass_tlog::checkpoint::Checkpoint;
use breakglass_tlog::hash::leaf_hash;
use breakglass_tlog::proof::{verify_consistency, verify_inclusion};
use serde_json::json;

use crate::harness::*;

/// Asserts that receipts cover `0..size` exactly once, and returns `size`.
fn assert_contiguous(receipts: &[Receipt]) -> u64 {
    let mut spans: Vec<(u64, u64)> = receipts.iter().map(|r| (r.index, r.count)).collect();
    spans.sort_unstable();
    let mut next = 0;
    for (index, count) in spans {
        assert_eq!(index, next, "receipts leave a gap or overlap at {next}");
        assert!(count > 0);
        next += count;
    }
    next
}

/// Asserts every acknowledged draft is stored at its receipt's index with
/// exactly the data it was given, the receipt's time, and a covering checkpoint.
async fn assert_acknowledged_entries_stored(log: &TestLog, acked: &[(Receipt, Vec<EntryDraft>)]) {
    let stored = log.db_entries().await;
    let cp_sizes: HashSet<u64> = checkpoint_sizes(log.pool()).await.into_iter().collect();
    for (receipt, drafts) in acked {
        assert_eq!(receipt.count, drafts.len() as u64);
        assert!(receipt.checkpoint_size >= receipt.index + receipt.count, "{receipt:?}");
        assert!(
            cp_sizes.contains(&receipt.checkpoint_size),
            "no stored checkpoint of size {}",
            receipt.checkpoint_size
        );
        for (k, d) in drafts.iter().enumerate() {
            let index = receipt.index + k as u64;
            let record = &stored[index as usize];
            assert_eq!(record.index, index);
            let entry = decode(&record.data);
            let want = Entry::sequence(d.clone(), index, receipt.time);
            assert_eq!(entry, want, "entry {index}");
            assert_eq!(record.data, want.encode().unwrap(), "entry {index} bytes");
        }
    }
}

/// Checks inclusion proofs for `(index, size)` pairs and consistency proofs
/// for `(old, new)` pairs against the tree recomputed in the test, and that
/// a proof does not verify for the wrong leaf or roots.
async fn assert_proofs(reader: &LogReader, inclusion: &[(u64, u64)], consistency: &[(u64, u64)]) {
    let entries = reader.store().entries(0, u64::MAX).await.unwrap();
    let leaves: Vec<_> = entries.iter().map(|e| leaf_hash(&e.data)).collect();
    for &(index, size) in inclusion {
        let root = reader.tree_hash(size).await.unwrap();
        assert_eq!(root, mth(&leaves[..size as usize]), "tree_hash({size})");
        let proof = reader.prove_inclusion(index, size).await.unwrap();
        verify_inclusion(index, size, &leaves[index as usize].0, &proof, &root.0)
            .unwrap_or_else(|e| panic!("inclusion of {index} in {size}: {e}"));
        let other = leaves[(index as usize + 1) % size as usize];
        if size > 1 {
            assert!(verify_inclusion(index, size, &other.0, &proof, &root.0).is_err(), "wrong leaf verified");
        }
    }
    for &(old, new) in consistency {
        let (old_root, new_root) = (reader.tree_hash(old).await.unwrap(), reader.tree_hash(new).await.unwrap());
        let proof = reader.prove_consistency(old, new).await.unwrap();
        verify_consistency(old, new, &old_root.0, &new_root.0, &proof)
            .unwrap_or_else(|e| panic!("consistency {old} -> {new}: {e}"));
        if old != new {
            let wrong = leaf_hash(b"not a root");
            assert!(verify_consistency(old, new, &wrong.0, &new_root.0, &proof).is_err());
            assert!(verify_consistency(old, new, &old_root.0, &wrong.0, &proof).is_err());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_are_contiguous_durable_and_provable() {
    const TASKS: u64 = 16;
    const PER_TASK: u64 = 50;
    let log = TestLog::new().await;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let ledger = log.ledger().clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..PER_TASK {
                let n = t * 1000 + i * 10;
                // Every tenth request appends three entries at once.
                let drafts: Vec<_> = if i % 10 == 9 { (n..n + 3).map(draft).collect() } else { vec![draft(n)] };
                let receipt = if drafts.len() == 1 {
                    ledger.append(drafts[0].clone()).await
                } else {
                    ledger.append_all(drafts.clone()).await
                };
                acked.push((receipt.expect("append acknowledged"), drafts));
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    let receipts: Vec<Receipt> = acked.iter().map(|a| a.0).collect();
    let n = assert_contiguous(&receipts);
    assert_eq!(n, TASKS * (PER_TASK + 2 * (PER_TASK / 10)));
    assert_eq!(log.head_size().await, n);
    assert_acknowledged_entries_stored(&log, &acked).await;

    let reader = log.reader();
    let head = reader.head().await.unwrap();
    let cp = Checkpoint::open(&head.note, ORIGIN, &[signer().verifier()]).unwrap();
    assert_eq!((cp.size, cp.root), (n, reader.tree_hash(n).await.unwrap()));
    let e = reader.entry(n - 1).await.unwrap();
    assert_eq!(decode(&e.data).index, n - 1);
    assert!(reader.entry(n).await.is_err(), "entry past the head is readable");

    let inclusion =
        [(0, 1), (0, n), (n - 1, n), (5, 8), (7, 8), (13, 600), (255, 256), (256, 257), (511, n), (300, 301)];
    let consistency = [(1, n), (1, 2), (7, 8), (8, 9), (100, 600), (255, 256), (256, n), (n - 1, n), (n, n), (3, 3)];
    assert_proofs(&reader, &inclusion, &consistency).await;

    let report = log.verify_with_sink().await.expect("verify");
    assert_eq!((report.size, report.sink_lines), (n, Some(n)));
    assert_eq!(report.checkpoints, checkpoint_sizes(log.pool()).await.len() as u64);
    assert_eq!(report.root, cp.root.to_base64());
    log.assert_sink_matches_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_all_gets_consecutive_indexes_one_time_and_one_checkpoint() {
    let log = TestLog::new().await;
    let mut next = 0;
    let mut acked = Vec::new();
    // (batch size, clock)
    for (size, clock) in [(1, 10), (3, 20), (1, 30), (10, 40), (2, 50), (64, 60)] {
        log.clock.set(T0 + clock);
        let drafts: Vec<_> = (next..next + size).map(|n| draft(n).with_grant(format!("g_{n}"))).collect();
        let receipt = log.ledger().append_all(drafts.clone()).await.unwrap();
        assert_eq!(
            receipt,
            Receipt { index: next, count: size, checkpoint_size: next + size, time: Timestamp(T0 + clock) }
        );
        acked.push((receipt, drafts));
        next += size;
    }
    assert_acknowledged_entries_stored(&log, &acked).await;
    // A sequential writer gets one checkpoint per request, at its end.
    assert_eq!(checkpoint_sizes(log.pool()).await, vec![1, 4, 5, 15, 17, 81]);
    assert_eq!(log.verify_with_sink().await.unwrap().sink_lines, Some(81));
}

/// Data that makes the entry, as `validate` sizes it (largest index and
/// time), exactly `total` bytes long.
fn draft_of_size(total: usize) -> EntryDraft {
    let base = EntryDraft::new("a", "k", json!({ "pad": "" }));
    let overhead = Entry::sequence(base, u64::MAX, Timestamp(253_402_300_799_999)).encode().unwrap().len();
    EntryDraft::new("a", "k", json!({ "pad": "x".repeat(total - overhead) }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_drafts_are_refused_and_change_nothing() {
    let mut log = TestLog::with_entries(5).await;
    let d = |data| EntryDraft::new("alice", "grant.requested", data);
    let cases: Vec<(&str, Vec<EntryDraft>, &str)> = vec![
        ("data is an array", vec![d(json!([1, 2]))], "field data: must be a JSON object"),
        ("data is a string", vec![d(json!("x"))], "field data: must be a JSON object"),
        ("data is null", vec![d(json!(null))], "field data: must be a JSON object"),
        ("data holds a float", vec![d(json!({ "x": 1.5 }))], "is not an integer"),
        ("entry over 65,535 bytes", vec![d(json!({ "pad": "x".repeat(70_000) }))], "over the limit of 65535"),
        ("entry one byte over the limit", vec![draft_of_size(MAX_ENTRY_BYTES + 1)], "is 65536 bytes"),
        ("kind with capitals", vec![EntryDraft::new("alice", "Grant", json!({}))], "field kind"),
        ("empty actor", vec![EntryDraft::new("", "grant.requested", json!({}))], "field actor"),
        ("actor with a newline", vec![EntryDraft::new("a\nb", "grant.requested", json!({}))], "field actor"),
        ("one bad draft in a batch", vec![draft(100), d(json!(1)), draft(101)], "field data: must be a JSON object"),
    ];
    for (name, drafts, want) in cases {
        let size = log.head_size().await;
        let sink = std::fs::read(&log.sink).unwrap();
        let err = log.ledger().append_all(drafts).await.expect_err(name);
        assert!(matches!(err, AppendError::Invalid(_)), "{name}: {err:?}");
        assert!(err.to_string().contains(want), "{name}: {err} does not mention {want:?}");
        assert_eq!(log.head_size().await, size, "{name}: head moved");
        assert_eq!(std::fs::read(&log.sink).unwrap(), sink, "{name}: sink changed");
        let receipts = log.append_n(1).await;
        assert_eq!(receipts[0].index, size, "{name}: the next valid append");
    }
    // An empty batch is refused too, but it is not an invalid entry.
    let err = log.ledger().append_all(Vec::new()).await.unwrap_err();
    assert!(matches!(err, AppendError::Failed(_)), "{err:?}");
    // The largest entry is accepted, and stored whole.
    let size = log.head_size().await;
    let receipt = log.ledger().append(draft_of_size(MAX_ENTRY_BYTES)).await.unwrap();
    assert_eq!(receipt.index, size);
    // Stored with its real index, which is shorter than the widest one validation assumes.
    let stored = log.reader().entry(size).await.unwrap().data.len();
    assert_eq!(stored, MAX_ENTRY_BYTES - (u64::MAX.to_string().len() - size.to_string().len()));
    log.verify_with_sink().await.unwrap();
    log.assert_sink_matches_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entry_time_comes_from_the_clock_and_never_goes_backwards() {
    let log = TestLog::new().await;
    // (clock, time stamped on the entry)
    let cases =
        [(T0, T0), (T0 + 500, T0 + 500), (T0 + 100, T0 + 500), (T0 - 86_400_000, T0 + 500), (T0 + 501, T0 + 501)];
    for (i, (clock, want)) in cases.into_iter().enumerate() {
        log.clock.set(clock);
        let receipt = log.ledger().append(draft(i as u64)).await.unwrap();
        assert_eq!(receipt.time, Timestamp(want), "case {i}");
        let entry = decode(&log.reader().entry(receipt.index).await.unwrap().data);
        assert_eq!(entry.time, Timestamp(want), "case {i}");
    }
}

/// One append's outcome, with the draft it was given.
type Appended = (Result<Receipt, AppendError>, EntryDraft);

/// Appends `tasks` x `per_task` entries through `ledger`, each task's drafts
/// numbered from `base + 1000 * task`.
fn spawn_appenders(
    ledger: &Ledger,
    base: u64,
    tasks: u64,
    per_task: u64,
) -> Vec<tokio::task::JoinHandle<Vec<Appended>>> {
    (0..tasks)
        .map(|t| {
            let ledger = ledger.clone();
            tokio::spawn(async move {
                let mut out = Vec::new();
                for i in 0..per_task {
                    let d = draft(base + 1000 * t + i);
                    out.push((ledger.append(d.clone()).await, d));
                }
                out
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ledgers_on_one_database_never_fork() {
    let mut log = TestLog::new().await;
    // A second process: its own store on the same file, its own sink handle
    // on the same sink file.
    let store_b = open_store(&log.db).await;
    let ledger_b = open_ledger(&store_b, Some(&log.sink), &log.clock).await;
    let mut handles = spawn_appenders(log.ledger(), 0, 8, 30);
    handles.extend(spawn_appenders(&ledger_b, 100_000, 8, 30));
    let mut acked = Vec::new();
    let mut failed = Vec::new();
    for h in handles {
        for (res, d) in h.await.unwrap() {
            match res {
                Ok(r) => acked.push((r, vec![d])),
                Err(e) => failed.push(e.to_string()),
            }
        }
    }
    let size = log.head_size().await;
    // Every append is acknowledged, and the log holds exactly those.
    assert_eq!(failed, Vec::<String>::new(), "appends failed");
    assert_eq!(size, acked.len() as u64);
    assert_eq!(assert_contiguous(&acked.iter().map(|a| a.0).collect::<Vec<_>>()), size);
    assert_acknowledged_entries_stored(&log, &acked).await;
    ledger_b.shutdown().await;
    log.stop_ledger().await;
    let report = log.verify_with_sink().await.expect("verify");
    assert_eq!(report.sink_lines, Some(size));
    log.assert_sink_matches_db().await;
    // A fresh ledger over the result opens (its checks pass) and continues it.
    let ledger = open_ledger(&log.store, Some(&log.sink), &log.clock).await;
    assert_eq!(ledger.append(draft(999_999)).await.unwrap().index, size);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_reloads_after_another_ledger_appended() {
    let log = TestLog::new().await;
    let store_b = open_store(&log.db).await;
    let ledger_b = open_ledger(&store_b, Some(&log.sink), &log.clock).await;
    let a = log.ledger();
    // (which ledger, how many entries, expected first index)
    let steps: &[(char, u64, u64)] = &[('a', 3, 0), ('b', 1, 3), ('a', 1, 4), ('b', 2, 5), ('b', 1, 7), ('a', 4, 8)];
    let mut acked = Vec::new();
    for (k, &(who, count, want)) in steps.iter().enumerate() {
        let ledger = if who == 'a' { a } else { &ledger_b };
        let drafts: Vec<_> = (0..count).map(|i| draft(100 * k as u64 + i)).collect();
        let receipt = ledger.append_all(drafts.clone()).await.unwrap_or_else(|e| panic!("step {k} ({who}): {e}"));
        assert_eq!((receipt.index, receipt.count, receipt.checkpoint_size), (want, count, want + count), "step {k}");
        acked.push((receipt, drafts));
    }
    assert_acknowledged_entries_stored(&log, &acked).await;
    let report = log.verify_with_sink().await.unwrap();
    assert_eq!((report.size, report.sink_lines), (12, Some(12)));
    log.assert_sink_matches_db().await;
    // A reader on either store sees the same head.
    assert_eq!(reader_for(&store_b).head().await.unwrap(), log.reader().head().await.unwrap());
    ledger_b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_of_many_requests_group_into_few_checkpoints() {
    // Group commit: with many requests in flight, batches hold more than one
    // request, so there are fewer checkpoints than requests, and each
    // receipt names the checkpoint of its batch.
    let log = TestLog::new().await;
    let handles = spawn_appenders(log.ledger(), 0, 16, 20);
    let mut by_checkpoint: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for h in handles {
        for (res, _) in h.await.unwrap() {
            let r = res.unwrap();
            by_checkpoint.entry(r.checkpoint_size).or_default().push(r.index);
        }
    }
    let sizes = checkpoint_sizes(log.pool()).await;
    assert_eq!(by_checkpoint.keys().copied().collect::<Vec<_>>(), sizes);
    assert!(sizes.len() < 320, "no batching: {} checkpoints for 320 appends", sizes.len());
    let mut prev = 0;
    for (size, mut indexes) in by_checkpoint {
        indexes.sort_unstable();
        assert_eq!(indexes, (prev..size).collect::<Vec<_>>(), "batch ending at {size}");
        prev = size;
    }
}

/// `Ledger::shutdown` "stops accepting appends, finishes what is queued, and
/// waits for the sequencer". Handles are cheap clones that a server hands to
/// every request; shutting down through one of them must still return (the
/// timeout only turns a hang into a failure), and afterwards no handle appends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_returns_while_other_handles_exist() {
    let mut log = TestLog::with_entries(3).await;
    let other = log.ledger().clone();
    let stopped = tokio::time::timeout(std::time::Duration::from_secs(5), log.stop_ledger()).await;
    assert!(stopped.is_ok(), "shutdown() never returned: it waits for every other handle to be dropped");
    let res = other.append(draft(9)).await;
    assert!(matches!(res, Err(AppendError::Closed)), "appended after shutdown: {res:?}");
    assert_eq!(log.head_size().await, 3);
}

/// Waits (yielding, never sleeping) until the head row reaches `size`, or
/// the append that should get it there has finished (with an error).
async fn until_head<T>(log: &TestLog, size: u64, task: &tokio::task::JoinHandle<T>) {
    for _ in 0..100_000 {
        if log.head_size().await >= size || task.is_finished() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("the log never reached {size} entries while the sink was locked");
}

/// Two ledgers share one sink file. When the second ledger's sink thread
/// takes the file lock first, it copies the first ledger's committed batch
/// from the database along with its own; the first ledger's sink thread then
/// finds the file past the end of its batch. Its entries are committed and in
/// the sink, so its appends must be acknowledged, not failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ledgers_sharing_a_sink_acknowledge_every_committed_entry() {
    let log = TestLog::new().await;
    let store_b = open_store(&log.db).await;
    let ledger_b = open_ledger(&store_b, Some(&log.sink), &log.clock).await;
    let mut results = Vec::new();
    for round in 0..5u64 {
        // Hold the sink's lock, as a slow sink thread of a third process would.
        let held = std::fs::File::open(&log.sink).unwrap();
        held.lock().unwrap();
        let base = 3 * round;
        // B commits a batch, A the next, B the next; the three sink jobs wait
        // for the lock. Whichever order the sink threads then take it in,
        // except B-A-B, one thread finds the file past the end of its batch.
        let b = ledger_b.clone();
        let b1 = tokio::spawn(async move { b.append(draft(100 * round)).await });
        until_head(&log, base + 1, &b1).await;
        let a = log.ledger().clone();
        let a1 = tokio::spawn(async move { a.append(draft(100 * round + 1)).await });
        until_head(&log, base + 2, &a1).await;
        let b = ledger_b.clone();
        let b2 = tokio::spawn(async move { b.append(draft(100 * round + 2)).await });
        until_head(&log, base + 3, &b2).await;
        held.unlock().unwrap();
        for (name, task) in [("b1", b1), ("a1", a1), ("b2", b2)] {
            results.push((round, name, task.await.unwrap().map(|r| r.index).map_err(|e| e.to_string())));
        }
    }
    let failed: Vec<_> = results.iter().filter(|r| r.2.is_err()).collect();
    assert!(failed.is_empty(), "appends committed but not acknowledged: {failed:#?}");
    ledger_b.shutdown().await;
    log.verify_with_sink().await.unwrap();
    log.assert_sink_matches_db().await;
}

/// Regression: `shutdown` called before the sequencer task was first polled
/// saw the stop flag, skipped closing the channel, and waited forever for a
/// request (found as a rare hang of `breakglass debug append` on bad input).
/// A fresh current-thread runtime per round guarantees the task has not run
/// when `shutdown` is called.
#[test]
fn shutdown_before_the_sequencer_ever_ran_returns() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    for round in 0..20 {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let store = open_store(&db).await;
            let clock = ManualClock::new(T0);
            let ledger = open_ledger(&store, None, &clock).await;
            let other = ledger.clone();
            let stopped = tokio::time::timeout(std::time::Duration::from_secs(5), ledger.shutdown()).await;
            assert!(stopped.is_ok(), "round {round}: shutdown() hung");
            assert!(matches!(other.append(draft(round)).await, Err(AppendError::Closed)));
        });
    }
}

/// `audit verify` runs against a live server: appends that commit while it
/// reads must never make a sound log look tampered (it verifies as of one
/// snapshot of the head). Found when two sequencers raced a two-step head read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_while_appending_passes() {
    let log = TestLog::with_entries(500).await;
    let ledger = log.ledger().clone();
    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            let ledger = ledger.clone();
            tokio::spawn(async move {
                for k in 0..150u64 {
                    ledger.append(draft(10_000 + w * 1_000 + k)).await.expect("append");
                }
            })
        })
        .collect();
    let mut sizes = Vec::new();
    while writers.iter().any(|w| !w.is_finished()) {
        let report = log.verify_with_sink().await.expect("a live log verifies");
        sizes.push(report.size);
        tokio::task::yield_now().await;
    }
    for w in writers {
        w.await.unwrap();
    }
    let last = log.verify_with_sink().await.expect("verifies at rest");
    assert_eq!(last.size, 1100);
    assert!(sizes.windows(2).all(|w| w[0] <= w[1]), "verified sizes went backwards: {sizes:?}");
    assert!(!sizes.is_empty());
}
