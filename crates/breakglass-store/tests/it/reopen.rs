//! Closing and reopening: nothing acknowledged is lost, the ledger continues
//! at the right index, and the sink is repaired or caught up on open; a
//! store reopened read-only refuses writes.

use breakglass_entry::entry::EntryDraft;
use breakglass_store::ledger::OpenError;
use breakglass_store::sink::SinkError;
use breakglass_store::sqlite::{OpenOptions, SqliteStore};
use breakglass_store::{LogStore, Mutation};
use serde_json::json;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_survive_reopen_and_continue_at_the_right_index() {
    let log = TestLog::with_entries(25).await;
    let entries = log.db_entries().await;
    let head = log.reader().head().await.unwrap();
    let mut log = log.close().await.reopen().await;
    assert_eq!(log.db_entries().await, entries);
    assert_eq!(log.reader().head().await.unwrap(), head);
    let receipts = log.append_n(10).await;
    assert_eq!(receipts[0].index, 25);
    let log = log.close().await.reopen().await;
    assert_eq!(log.reader().size().await.unwrap(), 35);
    assert_eq!(log.db_entries().await[..25], entries[..]);
    let report = log.verify_with_sink().await.unwrap();
    assert_eq!((report.size, report.sink_lines), (35, Some(35)));
    log.assert_sink_matches_db().await;
}

/// Offsets just past each line's newline.
fn line_ends(bytes: &[u8]) -> Vec<u64> {
    bytes.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i as u64 + 1).collect()
}

/// Picks the length to cut the sink to from its line ends; `None` deletes it.
type Cut = fn(&[u64]) -> Option<u64>;

/// Cuts the sink to the length `cut` picks from the line ends (`None`: delete
/// it), reopens the ledger, and checks the sink is the database again.
async fn check_sink_repair(log: TestLog, name: &str, cut: Cut) {
    let n = log.appended;
    let closed = log.close().await;
    let full = std::fs::read(&closed.sink).unwrap();
    let ends = line_ends(&full);
    assert_eq!(ends.len() as u64, n);
    match cut(&ends) {
        Some(len) => std::fs::File::options().write(true).open(&closed.sink).unwrap().set_len(len).unwrap(),
        None => std::fs::remove_file(&closed.sink).unwrap(),
    }
    let mut log = closed.reopen().await;
    let restored = std::fs::read(&log.sink).unwrap();
    assert!(restored.starts_with(&full), "{name}: sink not restored on open");
    // Issue 14: a cut deeper than the batches a crash leaves out is recorded
    // in the log (an entry after the restored ones); a crash's gap is not.
    let repair = log.ledger().open_report().sink_repair.clone().expect("a repair");
    let kept = cut(&ends).map_or(0, |len| ends.iter().filter(|e| **e <= len).count() as u64);
    assert_eq!(repair.had, kept, "{name}");
    let window_start = checkpoint_sizes(log.pool()).await.into_iter().filter(|s| *s <= n).rev().nth(2).unwrap_or(0);
    assert_eq!(repair.beyond_window, kept < window_start, "{name}: {repair:?}");
    assert_eq!(repair.recorded_at, repair.beyond_window.then_some(n), "{name}");
    let recorded = u64::from(repair.beyond_window);
    assert_eq!(line_ends(&restored).len() as u64, n + recorded, "{name}");
    log.appended += recorded;
    log.append_n(3).await;
    log.assert_sink_matches_db().await;
    let report = log.verify_with_sink().await.unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(report.sink_lines, Some(n + recorded + 3), "{name}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_sink_is_repaired_on_open() {
    let cases: &[(&str, Cut)] = &[
        ("last newline missing", |e| Some(e[19] - 1)),
        ("last line cut in the middle", |e| Some((e[18] + e[19]) / 2)),
        ("one byte of the last line left", |e| Some(e[18] + 1)),
        ("last line missing", |e| Some(e[18])),
        ("last 5 lines missing", |e| Some(e[14])),
        ("5 lines and a half missing", |e| Some(e[13] + 7)),
        ("first line cut", |_| Some(3)),
        ("empty file", |_| Some(0)),
        ("file deleted", |_| None),
    ];
    for (name, cut) in cases {
        check_sink_repair(TestLog::with_entries(20).await, name, *cut).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_sink_of_large_entries_is_repaired_on_open() {
    // Entries near the size limit: the file is longer than the window the
    // sink reads its tail through.
    let cases: &[(&str, Cut)] = &[
        ("last line cut in the middle", |e| Some(e[2] + 30_000)),
        ("last newline missing", |e| Some(e[3] - 1)),
        ("two lines and a half missing", |e| Some(e[0] + 40_000)),
    ];
    for (name, cut) in cases {
        let mut log = TestLog::new().await;
        for i in 0..4 {
            let big = EntryDraft::new("alice", "test.big", json!({ "i": i, "pad": "y".repeat(60_000) }));
            log.ledger().append(big).await.unwrap();
            log.appended += 1;
        }
        check_sink_repair(log, name, *cut).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_ahead_of_the_database_is_refused_on_open() {
    let log = TestLog::with_entries(30).await;
    // Roll the database back to its checkpoint of size 26, consistently.
    exec(log.pool(), "DELETE FROM log_entries WHERE idx >= ?", &[26]).await;
    exec(log.pool(), "DELETE FROM log_checkpoints WHERE size > ?", &[26]).await;
    exec(log.pool(), "UPDATE log_head SET size = ? WHERE id = 1", &[26]).await;
    let closed = log.close().await;
    let sink = std::fs::read(&closed.sink).unwrap();
    let (closed, err) = closed.try_reopen().await.err().expect("opened over a rolled-back database");
    assert!(
        matches!(err, OpenError::Sink(SinkError::Ahead { file_last: 29, log_size: 26, .. })),
        "unexpected error: {err}"
    );
    assert_eq!(std::fs::read(&closed.sink).unwrap(), sink, "the sink was changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_whose_last_line_is_not_an_entry_is_refused_on_open() {
    let log = TestLog::with_entries(3).await;
    let closed = log.close().await;
    let mut sink = std::fs::read(&closed.sink).unwrap();
    sink.extend_from_slice(b"{\"not\":\"an entry\"}\n");
    std::fs::write(&closed.sink, &sink).unwrap();
    let (_, err) = closed.try_reopen().await.err().expect("opened over a corrupt sink");
    assert!(
        matches!(&err, OpenError::Sink(SinkError::Corrupt { problem, .. }) if problem.contains("not an entry")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_store_refuses_object_updates() {
    let log = TestLog::with_entries(3).await.close().await;
    let store = SqliteStore::open(&log.db, OpenOptions { create: false, read_only: true }).await.unwrap();
    let create = Mutation {
        kind: "notification".into(),
        id: "n1".into(),
        expected_version: 0,
        status: "pending".into(),
        owner: String::new(),
        due: None,
        body: "{}".into(),
    };
    let err = store.update_objects(&[create]).await.unwrap_err();
    assert!(err.to_string().contains("read-only"), "{err}");
    assert_eq!(store.object("notification", "n1").await.unwrap(), None);
    assert_eq!(store.head_size().await.unwrap(), 3);
}
