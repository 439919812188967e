//! Issue 14, log tampering: every attack of the security campaign on the
//! audit log's storage, each performed as an operator or local user with
//! access to the database or to the JSON-lines copy would, and each
//! asserting the refusal: `audit verify`'s check fails naming the problem,
//! or a server's ledger refuses to open (and so to append). Attacks that
//! already held before issue 14 are here too, so the surface is in one place.
//!
//! The log every case starts from has 70 entries; its checkpoints (one per
//! batch) are at 1, 8, 10, 26, 29, 60, 65, 66 and 70, so a crash may leave
//! the sink without entries 65.. (the last `SINK_DEPTH` = 2 batches).

use breakglass_store::LogStore;
use breakglass_store::ledger::{Ledger, OpenError, SINK_DEPTH, SINK_REPAIRED_KIND};
use breakglass_store::verify::{SinkFloor, VerifyOptions, VerifyPlan, verify_log_planned};
use breakglass_tlog::checkpoint::Checkpoint;
use breakglass_tlog::hash::leaf_hash;
use breakglass_tlog::note::NoteSigner;

use crate::harness::*;

const N: u64 = 70;

/// A log of `N` entries, its first ledger stopped, the sink complete.
async fn log70() -> TestLog {
    let mut log = TestLog::with_entries(N).await;
    log.stop_ledger().await;
    assert_eq!(checkpoint_sizes(log.pool()).await, vec![1, 8, 10, 26, 29, 60, 65, 66, 70]);
    log
}

/// Opens a second ledger over the log as a server starts (own store handle).
async fn start_server(log: &TestLog, shared: bool) -> Result<Ledger, OpenError> {
    let store = open_store(&log.db).await;
    try_open_guarded(&store, &log.sink, &log.verified_path(), shared, &log.clock).await
}

/// Why the start was refused: the verification failure it reports.
fn refused(res: Result<Ledger, OpenError>) -> (String, Option<u64>) {
    match res {
        Err(OpenError::Verify { failure, .. }) => (failure.problem, failure.index),
        Err(e) => panic!("the start was refused, but not by the check: {e}"),
        Ok(_) => panic!("the server started over a tampered log"),
    }
}

/// Edits entry `idx`'s bytes and stores the leaf hash of the new bytes, as
/// someone who knows RFC 9162 would (the upper stored hashes stay).
async fn edit_with_recomputed_leaf(pool: &sqlx::SqlitePool, idx: u64) {
    let data = read_blob(pool, Column::Data, idx).await;
    let text = String::from_utf8(data).unwrap().replace(&format!("\"entry {idx}\""), "\"entry 9999\"");
    let mut hashes = read_blob(pool, Column::Hashes, idx).await;
    hashes[..32].copy_from_slice(&leaf_hash(text.as_bytes()).0);
    write_blob(pool, Column::Data, idx, text.into_bytes()).await;
    write_blob(pool, Column::Hashes, idx, hashes).await;
}

/// Rolls the database back to its first `size` entries, as a restored backup would.
async fn roll_back(pool: &sqlx::SqlitePool, size: u64) {
    exec(pool, "DELETE FROM log_entries WHERE idx >= ?", &[size as i64]).await;
    exec(pool, "DELETE FROM log_checkpoints WHERE size > ?", &[size as i64]).await;
    exec(pool, "UPDATE log_head SET size = ? WHERE id = 1", &[size as i64]).await;
}

// The JSON-lines copy, checked by `audit verify`.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue14_verify_refuses_a_copy_with_ten_lines_cut() {
    let log = log70().await;
    log.cut_sink_to(60);
    // The check as it was before issue 14 (no floor) accepts it.
    assert_eq!(log.verify_with_sink().await.unwrap().sink_lines, Some(60));
    let f = failure(log.verify_as_auditor(0).await);
    assert_eq!((f.index, f.sink_lacks), (Some(60), Some(10)), "{f:?}");
    assert!(f.problem.contains("lacks 10 entries: it holds 60 lines, the log has 70"), "{f:?}");
    assert!(f.problem.contains(&log.sink.display().to_string()), "the problem names the file: {f:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue14_verify_refuses_an_emptied_or_deleted_copy() {
    let log = log70().await;
    std::fs::write(&log.sink, b"").unwrap();
    assert_eq!(log.verify_with_sink().await.unwrap().sink_lines, Some(0), "accepted before issue 14");
    let f = failure(log.verify_as_auditor(0).await);
    assert_eq!((f.index, f.sink_lacks), (Some(0), Some(70)), "{f:?}");
    assert!(f.problem.contains("lacks 70 entries"), "{f:?}");
    std::fs::remove_file(&log.sink).unwrap();
    let f = failure(log.verify_as_auditor(0).await);
    assert!(f.problem.contains("does not exist"), "{f:?}");
}

/// The crash window is exact: the last two batches may be missing, one line more may not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue14_verify_accepts_only_the_crash_window_missing() {
    let log = log70().await;
    for (keep, ok) in [(70, true), (66, true), (65, true), (64, false), (60, false)] {
        log.cut_sink_to(keep);
        let res = log.verify_as_auditor(0).await;
        match (ok, res) {
            (true, Ok(r)) => assert_eq!((r.sink_lines, r.sink_floor), (Some(keep as u64), Some(65))),
            (false, Err(_)) => {}
            (_, res) => panic!("sink of {keep} lines: {res:?}"),
        }
    }
    assert_eq!(SINK_DEPTH, 2, "the window above is two batches");
}

/// On PostgreSQL each server's sink lags the others' appends, so only the
/// checkpoint the server saved bounds it; it still catches a cut line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue14_verify_holds_a_separate_sink_to_the_saved_checkpoint() {
    let log = log70().await;
    log.cut_sink_to(69);
    let floor = SinkFloor { at_least: 70, window: None, enforce: true };
    let opts = VerifyOptions { since: None, sink: Some(&log.sink) };
    let f = failure(verify_log_planned(&log.reader(), opts, VerifyPlan { start: None, sink_floor: floor }).await);
    assert_eq!(f.sink_lacks, Some(1), "{f:?}");
    assert!(f.problem.contains("when it was last checked"), "{f:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_refuses_an_edited_or_extended_copy() {
    let log = log70().await;
    let original = sink_lines(&log.sink);
    let mut edited = original.clone();
    edited[20][12] ^= 1;
    write_sink(&log.sink, &edited);
    let f = failure(log.verify_as_auditor(0).await);
    assert!(f.problem.contains("holds a different entry"), "{f:?}");
    let mut extended = original.clone();
    extended.push(original[69].clone());
    write_sink(&log.sink, &extended);
    let f = failure(log.verify_as_auditor(0).await);
    assert!(f.problem.contains("has entries the database does not"), "{f:?}");
}

// A server's start.

/// Ten lines cut from the copy while the server was down: the server
/// starts, copies them back, and records the repair in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue14_a_start_records_a_repair_beyond_the_crash_window() {
    let log = log70().await;
    log.cut_sink_to(60);
    let ledger = start_server(&log, true).await.expect("the server starts over a sound log");
    let repair = ledger.open_report().sink_repair.clone().expect("a repair");
    assert_eq!((repair.had, repair.size, repair.beyond_window, repair.recorded_at), (60, 70, true, Some(70)));
    let entry = decode(&log.store.entries(70, 71).await.unwrap()[0].data);
    assert_eq!(entry.kind, SINK_REPAIRED_KIND);
    assert_eq!((entry.data["had"].as_u64(), entry.data["lacked"].as_u64()), (Some(60), Some(10)));
    ledger.shutdown().await;
    log.assert_sink_matches_db().await;
    log.verify_as_auditor(0).await.expect("the repaired copy verifies");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue14_a_start_records_an_emptied_copy() {
    let log = log70().await;
    std::fs::write(&log.sink, b"").unwrap();
    let ledger = start_server(&log, true).await.unwrap();
    let repair = ledger.open_report().sink_repair.clone().unwrap();
    assert_eq!((repair.had, repair.beyond_window, repair.recorded_at), (0, true, Some(70)));
    ledger.shutdown().await;
}

/// The batches in flight at a crash are repaired silently, as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_crash_window_is_repaired_without_an_entry() {
    let log = log70().await;
    log.cut_sink_to(65);
    let ledger = start_server(&log, true).await.unwrap();
    let repair = ledger.open_report().sink_repair.clone().unwrap();
    assert_eq!((repair.had, repair.beyond_window, repair.recorded_at), (65, false, None));
    assert_eq!(log.head_size().await, 70, "nothing was logged");
    ledger.shutdown().await;
    log.assert_sink_matches_db().await;
}

/// With a separate sink (PostgreSQL), a long lag is the other servers' appends,
/// but a copy shorter than the checkpoint this server saved is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue14_a_separate_sink_is_held_to_the_saved_checkpoint() {
    let log = log70().await;
    log.cut_sink_to(30);
    let ledger = start_server(&log, false).await.unwrap();
    let repair = ledger.open_report().sink_repair.clone().unwrap();
    assert_eq!((repair.had, repair.beyond_window), (30, false), "no saved checkpoint yet: another server's lag");
    ledger.shutdown().await;
    log.cut_sink_to(30);
    let ledger = start_server(&log, false).await.unwrap();
    let repair = ledger.open_report().sink_repair.clone().unwrap();
    assert_eq!((repair.had, repair.beyond_window), (30, true), "below the saved checkpoint: lost");
    ledger.shutdown().await;
}

/// The first start verifies the whole log and saves its head; the next
/// verifies only what was appended since.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue14_a_start_verifies_from_the_checkpoint_it_saved() {
    let mut log = log70().await;
    let ledger = start_server(&log, true).await.unwrap();
    assert_eq!(ledger.open_report().verified, Some((0, 70)));
    ledger.shutdown().await;
    let trusted = [signer().verifier()];
    let saved = std::fs::read_to_string(log.verified_path()).unwrap();
    assert_eq!(Checkpoint::open(&saved, ORIGIN, &trusted).unwrap().size, 70);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(log.verified_path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "a checkpoint is not a secret");
    }
    // Another process appends 10 entries; this server then starts again.
    let closed = std::mem::replace(&mut log, TestLog::new().await).close().await;
    let mut log = closed.reopen().await;
    log.append_n(10).await;
    log.stop_ledger().await;
    let ledger = start_server(&log, true).await.unwrap();
    assert_eq!(ledger.open_report().verified, Some((70, 80)));
    // Appends during the run are verified at shutdown: the next start has nothing to do.
    ledger.append(draft(5000)).await.unwrap();
    ledger.shutdown().await;
    let ledger = start_server(&log, true).await.unwrap();
    assert_eq!(ledger.open_report().verified, Some((81, 81)));
    ledger.shutdown().await;
}

/// Issue 14's weak spot: a mid-log edit with a recomputed leaf hash was
/// served and appended to. Now the start refuses, names the entry, and
/// neither appends nor copies the edited entry to the sink.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue14_a_start_refuses_a_mid_log_edit_with_a_recomputed_leaf_hash() {
    let log = log70().await;
    log.cut_sink_to(60);
    edit_with_recomputed_leaf(log.pool(), 13).await;
    let (problem, index) = refused(start_server(&log, true).await);
    assert_eq!(index, Some(13), "{problem}");
    assert!(problem.contains("does not match the recomputed tree"), "{problem}");
    assert_eq!(log.head_size().await, 70, "nothing was appended");
    assert_eq!(sink_lines(&log.sink).len(), 60, "nothing was copied to the sink");
    // Refused again at every start, not only the first.
    refused(start_server(&log, true).await);
}

/// An edit after the checkpoint the server saved is found by the
/// incremental check; one before it only by a whole verification (`audit
/// verify`), which is the auditor's job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue14_an_edit_after_the_saved_checkpoint_is_refused_at_start() {
    let log = log70().await;
    start_server(&log, true).await.unwrap().shutdown().await;
    let mut log = log.close().await.reopen().await;
    log.append_n(10).await;
    log.stop_ledger().await;
    edit_with_recomputed_leaf(log.pool(), 75).await;
    let (problem, index) = refused(start_server(&log, true).await);
    assert_eq!(index, Some(75), "{problem}");
    edit_with_recomputed_leaf(log.pool(), 41).await;
    assert_eq!(failure(log.verify().await).index, Some(41));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue14_a_start_refuses_a_rolled_back_head() {
    let log = log70().await;
    start_server(&log, true).await.unwrap().shutdown().await;
    // Restored from a backup of 60 entries: a valid log, but shorter than
    // what this server verified.
    roll_back(log.pool(), 60).await;
    log.verify().await.expect("the rolled-back database is itself a valid log");
    let (problem, _) = refused(start_server(&log, true).await);
    assert!(
        problem.contains("the checkpoint verified earlier has 70: entries were removed or the log rolled back"),
        "{problem}"
    );
    // Rolled back and regrown to the same size with other entries (a fork).
    let other = open_store(&log.db).await;
    let forger = open_ledger(&other, None, &log.clock).await;
    forger.append_all((1000..1010).map(draft).collect()).await.unwrap();
    forger.shutdown().await;
    let (problem, _) = refused(start_server(&log, true).await);
    assert!(problem.contains("the log was rewritten"), "{problem}");
}

/// A checkpoint signed by another key, as the head or as the saved file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_checkpoint_is_refused() {
    let log = log70().await;
    start_server(&log, true).await.unwrap().shutdown().await;
    let other = NoteSigner::from_seed(ORIGIN, &[8; 32]).unwrap();
    let head = log.store.checkpoint(70).await.unwrap().unwrap();
    let forged = Checkpoint { origin: ORIGIN.into(), size: 70, root: head.root }.sign(&other).unwrap();
    // The saved file replaced by one the log's key did not sign.
    std::fs::write(log.verified_path(), &forged).unwrap();
    match start_server(&log, true).await {
        Err(OpenError::Anchor(e)) => {
            assert!(e.to_string().contains("is not a checkpoint signed by this log's key"), "{e}")
        }
        other => panic!("a forged saved checkpoint was accepted: {:?}", other.err()),
    }
    std::fs::write(log.verified_path(), &head.note).unwrap();
    // The head checkpoint replaced in the database.
    sqlx::query("UPDATE log_checkpoints SET note = ? WHERE size = 70").bind(&forged).execute(log.pool()).await.unwrap();
    match start_server(&log, true).await {
        Err(OpenError::Fatal(m)) => assert!(m.contains("the latest checkpoint is not signed by this log's key"), "{m}"),
        other => panic!("a forged head was accepted: {:?}", other.err()),
    }
    assert!(failure(log.verify().await).problem.contains("checkpoint 70 does not verify"));
}

/// Two entries swapped, bytes and hashes together: the first start (no
/// saved checkpoint) verifies the whole log and refuses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reordered_entry_is_refused() {
    let log = log70().await;
    let (d3, h3) = (read_blob(log.pool(), Column::Data, 3).await, read_blob(log.pool(), Column::Hashes, 3).await);
    let (d4, h4) = (read_blob(log.pool(), Column::Data, 4).await, read_blob(log.pool(), Column::Hashes, 4).await);
    write_blob(log.pool(), Column::Data, 3, d4).await;
    write_blob(log.pool(), Column::Hashes, 3, h4).await;
    write_blob(log.pool(), Column::Data, 4, d3).await;
    write_blob(log.pool(), Column::Hashes, 4, h3).await;
    let (problem, index) = refused(start_server(&log, true).await);
    assert_eq!(index, Some(3));
    assert!(problem.contains("entries were moved or reordered"), "{problem}");
    assert_eq!(failure(log.verify().await).index, Some(3));
}

/// An edited line in the copy: the server will not start on a copy that
/// disagrees with the database (one of them was changed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_copy_stops_the_start() {
    let log = log70().await;
    let mut lines = sink_lines(&log.sink);
    lines[5][10] ^= 1;
    write_sink(&log.sink, &lines);
    let (problem, index) = refused(start_server(&log, true).await);
    assert_eq!(index, Some(5));
    assert!(problem.contains("holds a different entry"), "{problem}");
}

/// The start compares only the copy's lines after the saved checkpoint
/// (found from the end of the file), and a half-written last line (a crash
/// during a write, never acknowledged) is repaired, not refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_checks_the_copy_after_the_saved_checkpoint() {
    let log = log70().await;
    start_server(&log, true).await.unwrap().shutdown().await;
    let mut log = log.close().await.reopen().await;
    log.append_n(5).await;
    log.stop_ledger().await;
    let original = sink_lines(&log.sink);
    let mut edited = original.clone();
    edited[72][12] ^= 1;
    write_sink(&log.sink, &edited);
    let (problem, index) = refused(start_server(&log, true).await);
    assert_eq!(index, Some(72), "{problem}");
    assert!(problem.contains("holds a different entry"), "{problem}");
    write_sink(&log.sink, &original);
    let bytes = std::fs::read(&log.sink).unwrap();
    std::fs::write(&log.sink, &bytes[..bytes.len() - 20]).unwrap();
    let ledger = start_server(&log, true).await.expect("a half-written line is a crash, not tampering");
    let repair = ledger.open_report().sink_repair.clone().unwrap();
    assert_eq!((repair.had, repair.beyond_window), (74, false));
    ledger.shutdown().await;
    log.assert_sink_matches_db().await;
}
