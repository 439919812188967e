//! Tampering with the stored log, each detected by `verify_log` at the first
//! bad index; a ledger refusing a tampered log; and a property test that
//! flips random bits.

use breakglass_entry::entry::Entry;
use breakglass_entry::time::Timestamp;
use breakglass_store::ledger::{AppendError, OpenError};
use breakglass_store::verify::{VerifyError, VerifyOptions, verify_log};
use breakglass_store::{LogStore, hashes_to_blob};
use breakglass_tlog::checkpoint::Checkpoint;
use breakglass_tlog::hash::leaf_hash;
use breakglass_tlog::note::NoteSigner;

use crate::harness::*;

/// The size of the log every tampering case starts from. Its checkpoints
/// (from the harness's batch sizes) are 1, 8, 10, 26, 29, 60, 65, 66, 70.
const N: u64 = 70;

#[derive(Clone, Copy, Debug)]
enum Tamper {
    /// Replaces the first `from` with `to` in an entry's bytes.
    DataEdit {
        idx: u64,
        from: &'static str,
        to: &'static str,
    },
    /// Flips the bits of one byte of an entry's stored hashes.
    HashByte {
        idx: u64,
        pos: usize,
    },
    /// Cuts or extends an entry's hashes blob to `len` bytes (extending repeats the leaf hash).
    HashesLen {
        idx: u64,
        len: usize,
    },
    /// `DELETE FROM log_entries WHERE idx >= k`.
    DeleteFrom(u64),
    /// Deletes one entry.
    DeleteOne(u64),
    /// Swaps the data and hashes of two entries.
    Swap(u64, u64),
    /// Inserts a well-formed entry `N` (right leaf hash) and sets the head row.
    InsertForged {
        head: u64,
    },
    /// Re-signs a checkpoint with another key of the same name.
    CheckpointOtherKey(u64),
    /// Re-signs a checkpoint with the right key for another origin.
    CheckpointOtherOrigin(u64),
    /// Re-signs a checkpoint with the right key over another root (note only).
    CheckpointNoteRoot(u64),
    /// The same, and the stored root column too.
    CheckpointRoot(u64),
    DeleteCheckpoint(u64),
    /// Sets the head row.
    Head(u64),
    /// Changes one byte of a sink line.
    SinkEdit(u64),
    SinkDeleteLine(u64),
    /// Appends a copy of the last line to the sink.
    SinkExtraLine,
}

impl Tamper {
    fn touches_sink(self) -> bool {
        matches!(self, Tamper::SinkEdit(_) | Tamper::SinkDeleteLine(_) | Tamper::SinkExtraLine)
    }

    async fn apply(self, log: &LogCopy) {
        let pool = log.pool();
        match self {
            Tamper::DataEdit { idx, from, to } => {
                let data = String::from_utf8(read_blob(pool, Column::Data, idx).await).unwrap();
                assert!(data.contains(from), "entry {idx} has no {from:?}: {data}");
                write_blob(pool, Column::Data, idx, data.replacen(from, to, 1).into_bytes()).await;
            }
            Tamper::HashByte { idx, pos } => {
                let mut blob = read_blob(pool, Column::Hashes, idx).await;
                blob[pos] ^= 0xff;
                write_blob(pool, Column::Hashes, idx, blob).await;
            }
            Tamper::HashesLen { idx, len } => {
                let mut blob = read_blob(pool, Column::Hashes, idx).await;
                let leaf = blob[..32].to_vec();
                while blob.len() < len {
                    blob.extend_from_slice(&leaf);
                }
                blob.truncate(len);
                write_blob(pool, Column::Hashes, idx, blob).await;
            }
            Tamper::DeleteFrom(k) => {
                assert_eq!(exec(pool, "DELETE FROM log_entries WHERE idx >= ?", &[k as i64]).await, N - k);
            }
            Tamper::DeleteOne(k) => {
                assert_eq!(exec(pool, "DELETE FROM log_entries WHERE idx = ?", &[k as i64]).await, 1);
            }
            Tamper::Swap(a, b) => {
                for column in [Column::Data, Column::Hashes] {
                    let (x, y) = (read_blob(pool, column, a).await, read_blob(pool, column, b).await);
                    write_blob(pool, column, a, y).await;
                    write_blob(pool, column, b, x).await;
                }
            }
            Tamper::InsertForged { head } => {
                let draft = draft(N);
                let data = Entry::sequence(draft, N, Timestamp(T0 + 1000)).encode().unwrap();
                // Entry 70 completes no subtree: its only stored hash is its leaf hash.
                let hashes = hashes_to_blob(&[leaf_hash(&data)]);
                sqlx::query("INSERT INTO log_entries (idx, hashes, data) VALUES (?, ?, ?)")
                    .bind(N as i64)
                    .bind(hashes)
                    .bind(data)
                    .execute(pool)
                    .await
                    .unwrap();
                exec(pool, "UPDATE log_head SET size = ? WHERE id = 1", &[head as i64]).await;
            }
            Tamper::CheckpointOtherKey(size) => {
                let other = NoteSigner::from_seed(ORIGIN, &[8; 32]).unwrap();
                let root = log.store.checkpoint(size).await.unwrap().unwrap().root;
                let note = Checkpoint { origin: ORIGIN.into(), size, root }.sign(&other).unwrap();
                set_note(log, size, note).await;
            }
            Tamper::CheckpointOtherOrigin(size) => {
                let root = log.store.checkpoint(size).await.unwrap().unwrap().root;
                let note = Checkpoint { origin: "example.test/other".into(), size, root }.sign(&signer()).unwrap();
                set_note(log, size, note).await;
            }
            Tamper::CheckpointNoteRoot(size) | Tamper::CheckpointRoot(size) => {
                let root = leaf_hash(b"forged");
                let note = Checkpoint { origin: ORIGIN.into(), size, root }.sign(&signer()).unwrap();
                set_note(log, size, note).await;
                if matches!(self, Tamper::CheckpointRoot(_)) {
                    sqlx::query("UPDATE log_checkpoints SET root = ? WHERE size = ?")
                        .bind(root.0.to_vec())
                        .bind(size as i64)
                        .execute(pool)
                        .await
                        .unwrap();
                }
            }
            Tamper::DeleteCheckpoint(size) => {
                assert_eq!(exec(pool, "DELETE FROM log_checkpoints WHERE size = ?", &[size as i64]).await, 1);
            }
            Tamper::Head(size) => {
                exec(pool, "UPDATE log_head SET size = ? WHERE id = 1", &[size as i64]).await;
            }
            Tamper::SinkEdit(_) | Tamper::SinkDeleteLine(_) | Tamper::SinkExtraLine => {
                let mut lines = sink_lines(&log.sink);
                match self {
                    Tamper::SinkEdit(k) => {
                        let line = &mut lines[k as usize];
                        let at = line.len() - 3;
                        line[at] ^= 0x01;
                    }
                    Tamper::SinkDeleteLine(k) => {
                        lines.remove(k as usize);
                    }
                    _ => lines.push(lines.last().unwrap().clone()),
                }
                let bytes: Vec<u8> = lines
                    .into_iter()
                    .flat_map(|mut l| {
                        l.push(b'\n');
                        l
                    })
                    .collect();
                std::fs::write(&log.sink, bytes).unwrap();
            }
        }
    }
}

async fn set_note(log: &LogCopy, size: u64, note: String) {
    let res = sqlx::query("UPDATE log_checkpoints SET note = ? WHERE size = ?")
        .bind(note)
        .bind(size as i64)
        .execute(log.pool())
        .await
        .unwrap();
    assert_eq!(res.rows_affected(), 1, "no checkpoint of size {size}");
}

/// Runs each case on a fresh copy of a log of `N` entries and checks that
/// verification (without and with the sink) fails at `index` with a problem
/// that mentions `problem`; sink-only tampering must pass without the sink.
/// Collects every mismatch before failing, so one run shows them all.
async fn check_cases(cases: &[(Tamper, Option<u64>, &str)]) {
    let mut log = TestLog::with_entries(N).await;
    log.stop_ledger().await;
    assert_eq!(checkpoint_sizes(log.pool()).await, vec![1, 8, 10, 26, 29, 60, 65, 66, 70]);
    log.verify_with_sink().await.expect("the untouched log verifies");
    let mut wrong = Vec::new();
    for &(tamper, index, problem) in cases {
        let copy = log.snapshot().await;
        tamper.apply(&copy).await;
        for with_sink in [false, true] {
            let res = copy.verify(with_sink).await;
            if tamper.touches_sink() && !with_sink {
                if let Err(e) = res {
                    wrong.push(format!("{tamper:?} without the sink: {e}"));
                }
                continue;
            }
            match res {
                Err(VerifyError::Failed(f)) if f.index == index && f.problem.contains(problem) => {}
                Err(VerifyError::Failed(f)) => wrong.push(format!(
                    "{tamper:?} (sink: {with_sink}): got index {:?} {:?}, want index {index:?} and {problem:?}",
                    f.index, f.problem
                )),
                other => {
                    wrong.push(format!("{tamper:?} (sink: {with_sink}): got {other:?}, want a failure at {index:?}"))
                }
            }
        }
        copy.store.close().await;
    }
    assert!(wrong.is_empty(), "{} wrong results in {} cases:\n{}", wrong.len(), cases.len(), wrong.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering_is_detected_at_the_first_bad_index() {
    use Tamper::*;
    const LEAF: &str = "its stored leaf hash does not match its bytes";
    const MOVED: &str = "entries were moved or reordered";
    const GONE: &str = "covers entries that are missing";
    check_cases(&[
        (DataEdit { idx: 13, from: "entry 13", to: "entry 31" }, Some(13), LEAF),
        (DataEdit { idx: 69, from: "\"n\":69", to: "\"n\":70" }, Some(69), LEAF),
        (DataEdit { idx: 40, from: "\"actor\":\"engineer-5\"", to: "\"actor\":\"engineer-6\"" }, Some(40), LEAF),
        (DataEdit { idx: 40, from: "T12:00:00.0", to: "T13:00:00.0" }, Some(40), LEAF),
        (DataEdit { idx: 13, from: "\"index\":13", to: "\"index\":14" }, Some(13), MOVED),
        (DataEdit { idx: 0, from: "{\"actor\"", to: "[\"actor\"" }, Some(0), "stored bytes are not a valid entry"),
        (DataEdit { idx: 40, from: "\"v\":1", to: "\"v\":2" }, Some(40), "unsupported entry version 2"),
        (DataEdit { idx: 41, from: "\"v\":1}", to: "\"v\":1 }" }, Some(41), "not canonical"),
        (HashByte { idx: 0, pos: 31 }, Some(0), LEAF),
        (HashByte { idx: 7, pos: 0 }, Some(7), LEAF),
        (HashByte { idx: 7, pos: 40 }, Some(7), "its stored hash at level 1 does not match"),
        (HashByte { idx: 7, pos: 127 }, Some(7), "its stored hash at level 3 does not match"),
        (HashByte { idx: 63, pos: 6 * 32 + 1 }, Some(63), "its stored hash at level 6 does not match"),
        (HashesLen { idx: 7, len: 160 }, Some(7), "its stored hash at level 4 does not match"),
        (DeleteFrom(69), Some(69), GONE),
        (DeleteFrom(40), Some(40), GONE),
        (DeleteFrom(0), Some(0), GONE),
        (DeleteOne(0), Some(0), "entry is missing (the next stored entry is 1)"),
        (DeleteOne(33), Some(33), "entry is missing (the next stored entry is 34)"),
        (DeleteOne(68), Some(68), "entry is missing"),
        (Swap(3, 4), Some(3), MOVED),
        (Swap(10, 60), Some(10), MOVED),
        (Swap(68, 69), Some(68), MOVED),
        (InsertForged { head: 70 }, Some(70), "the head says 70 entries but 71 are stored"),
        (InsertForged { head: 71 }, Some(70), "entries 70..71 are not covered by any signed checkpoint"),
        (CheckpointOtherKey(70), Some(69), "checkpoint 70 does not verify"),
        (CheckpointOtherKey(26), Some(25), "checkpoint 26 does not verify"),
        (CheckpointOtherOrigin(70), Some(69), "checkpoint 70 does not verify"),
        (CheckpointNoteRoot(70), Some(69), "the signed size or root differs from the stored columns"),
        (CheckpointRoot(70), Some(69), "checkpoint 70 signs a root that the entries do not produce"),
        (CheckpointRoot(8), Some(7), "checkpoint 8 signs a root that the entries do not produce"),
        (DeleteCheckpoint(70), Some(66), "entries 66..70 are not covered by any signed checkpoint"),
        (Head(65), Some(65), "the head says 65 entries but 70 are stored"),
        (Head(0), Some(0), "the head says 0 entries but 70 are stored"),
        (Head(80), Some(70), "the head says 80 entries but 70 are stored"),
        (SinkEdit(20), Some(20), "holds a different entry"),
        (SinkDeleteLine(20), Some(20), "holds a different entry"),
        (SinkDeleteLine(0), Some(0), "holds a different entry"),
        (SinkExtraLine, Some(70), "has entries the database does not"),
    ])
    .await;
}

/// A hashes blob that is not a whole number of hashes, or is missing one,
/// is tampering like any other: it must fail verification at that entry
/// (`audit verify` then exits "check failed" and names the index), not
/// surface as a storage error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashes_blob_of_the_wrong_length_fails_at_its_index() {
    use Tamper::*;
    check_cases(&[
        (HashesLen { idx: 7, len: 96 }, Some(7), "its stored hash at level 3 does not match"),
        (HashesLen { idx: 21, len: 31 }, Some(21), "stored hashes are 31 bytes"),
        (HashesLen { idx: 21, len: 0 }, Some(21), "stored hashes are 0 bytes"),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_truncation_is_caught_by_a_saved_checkpoint_or_the_sink() {
    let mut log = TestLog::with_entries(N).await;
    log.stop_ledger().await;
    let trusted = [signer().verifier()];
    let saved = |note: &str| Checkpoint::open(note, ORIGIN, &trusted).unwrap();
    let latest = saved(&log.reader().head().await.unwrap().note);
    let older = saved(&log.store.checkpoint(26).await.unwrap().unwrap().note);
    // Remove entries 60.. with their checkpoints, and set the head back: the
    // database alone is a valid log of 60 entries.
    exec(log.pool(), "DELETE FROM log_entries WHERE idx >= ?", &[60]).await;
    exec(log.pool(), "DELETE FROM log_checkpoints WHERE size > ?", &[60]).await;
    exec(log.pool(), "UPDATE log_head SET size = ? WHERE id = 1", &[60]).await;
    let reader = log.reader();
    let verify = |since, sink| {
        let reader = reader.clone();
        async move { verify_log(&reader, VerifyOptions { since, sink }).await }
    };
    assert_eq!(verify(None, None).await.unwrap().size, 60);
    assert_eq!(verify(Some(&older), None).await.unwrap().since, Some(26));
    // (since, sink) -> the failure
    let sink = Some(log.sink.as_path());
    let cases = [
        (Some(&latest), None, "the log has 60 entries but the saved checkpoint has 70"),
        (None, sink, "has entries the database does not: entries were deleted"),
        (Some(&latest), sink, "saved checkpoint has 70"),
        (Some(&older), sink, "has entries the database does not"),
    ];
    for (since, sink, problem) in cases {
        let f = failure(verify(since, sink).await);
        assert_eq!(f.index, Some(60), "{problem}: {f:?}");
        assert!(f.problem.contains(problem), "{f:?} does not mention {problem:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewritten_log_is_caught_by_a_saved_checkpoint_and_halts_its_old_ledger() {
    let log = TestLog::with_entries(N).await;
    let trusted = [signer().verifier()];
    let latest = Checkpoint::open(&log.reader().head().await.unwrap().note, ORIGIN, &trusted).unwrap();
    // Someone rolls the database back to 60 entries and, with the signing
    // key, appends 15 other entries: a fork, signed by the right key.
    exec(log.pool(), "DELETE FROM log_entries WHERE idx >= ?", &[60]).await;
    exec(log.pool(), "DELETE FROM log_checkpoints WHERE size > ?", &[60]).await;
    exec(log.pool(), "UPDATE log_head SET size = ? WHERE id = 1", &[60]).await;
    let other = open_store(&log.db).await;
    let forger = open_ledger(&other, None, &log.clock).await;
    let receipt = forger.append_all((1000..1015).map(draft).collect()).await.unwrap();
    assert_eq!((receipt.index, receipt.checkpoint_size), (60, 75));
    forger.shutdown().await;
    // The database alone verifies; the saved checkpoint of size 70 does not
    // match the tree of the first 70 entries.
    assert_eq!(log.verify().await.unwrap().size, 75);
    let f = failure(verify_log(&log.reader(), VerifyOptions { since: Some(&latest), sink: None }).await);
    assert_eq!(f.index, None);
    assert!(f.problem.contains("the saved checkpoint of size 70 is not a prefix of this log"), "{f:?}");
    // The ledger that signed size 70 refuses to extend the fork, for good.
    for attempt in 0..2 {
        let err = log.ledger().append(draft(2000)).await.unwrap_err();
        assert!(matches!(&err, AppendError::Fatal(m) if m.contains("forked or rewritten")), "attempt {attempt}: {err}");
    }
    assert_eq!(log.head_size().await, 75);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_halts_when_the_log_shrinks_under_it() {
    let log = TestLog::with_entries(N).await;
    exec(log.pool(), "DELETE FROM log_entries WHERE idx >= ?", &[60]).await;
    exec(log.pool(), "DELETE FROM log_checkpoints WHERE size > ?", &[60]).await;
    exec(log.pool(), "UPDATE log_head SET size = ? WHERE id = 1", &[60]).await;
    for attempt in 0..2 {
        let err = log.ledger().append(draft(2000)).await.unwrap_err();
        assert!(
            matches!(&err, AppendError::Fatal(m) if m.contains("the log shrank from 70 to 60 entries")),
            "attempt {attempt}: {err}"
        );
    }
    assert_eq!(log.head_size().await, 60);
    assert_eq!(sink_lines(&log.sink).len(), 70, "the halted ledger touched the sink");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_refuses_to_open_over_a_tampered_log() {
    use Tamper::*;
    let mut log = TestLog::with_entries(N).await;
    log.stop_ledger().await;
    // The peaks of a tree of 70 leaves are the hashes of leaves 0..64 (entry
    // 63, level 6), 64..68 (entry 67, level 2) and 68..70 (entry 69, level 1).
    let cases = [
        (CheckpointOtherKey(70), "the latest checkpoint is not signed by this log's key"),
        (CheckpointOtherOrigin(70), "the latest checkpoint is not signed by this log's key"),
        (Head(65), "the head row says size 65 but the latest checkpoint is 70"),
        (HashByte { idx: 69, pos: 32 }, "stored hashes do not match checkpoint 70"),
        (HashByte { idx: 67, pos: 64 }, "stored hashes do not match checkpoint 70"),
        (HashByte { idx: 63, pos: 6 * 32 }, "stored hashes do not match checkpoint 70"),
    ];
    for (tamper, problem) in cases {
        let copy = log.snapshot().await;
        tamper.apply(&copy).await;
        let clock = ManualClock::new(T0);
        let err =
            try_open_ledger(&copy.store, None, &clock).await.err().unwrap_or_else(|| panic!("{tamper:?}: opened"));
        assert!(matches!(&err, OpenError::Fatal(m) if m.contains(problem)), "{tamper:?}: {err}");
        copy.store.close().await;
    }
}

/// Flips one random bit in `n` random (entry, byte) positions of `column`,
/// one at a time, and checks verification fails at exactly that entry.
async fn flip_random_bits(copy: &LogCopy, size: u64, column: Column, rng: &mut XorShift, n: usize) {
    for _ in 0..n {
        let idx = rng.below(size);
        let original = read_blob(copy.pool(), column, idx).await;
        let pos = rng.below(original.len() as u64) as usize;
        let mut bad = original.clone();
        bad[pos] ^= 1 << rng.below(8);
        write_blob(copy.pool(), column, idx, bad.clone()).await;
        let f = failure(copy.verify(false).await);
        let case = format!("{column:?} of entry {idx}, byte {pos}: {f:?}");
        assert_eq!(f.index, Some(idx), "{case}");
        if column == Column::Hashes {
            let want = match pos / 32 {
                0 => "its stored leaf hash does not match its bytes".to_owned(),
                level => format!("its stored hash at level {level} does not match"),
            };
            assert!(f.problem.contains(&want), "{case}");
        }
        write_blob(copy.pool(), column, idx, original).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bit_flips_are_detected_at_their_entry() {
    const SIZE: u64 = 300;
    let mut log = TestLog::with_entries(SIZE).await;
    log.stop_ledger().await;
    let copy = log.snapshot().await;
    let mut rng = XorShift::new(0x9e37_79b9_7f4a_7c15);
    flip_random_bits(&copy, SIZE, Column::Data, &mut rng, 50).await;
    flip_random_bits(&copy, SIZE, Column::Hashes, &mut rng, 50).await;
    // Every flip was undone: the copy verifies again, and is the original.
    let report = copy.verify(true).await.unwrap();
    assert_eq!((report.size, report.sink_lines), (SIZE, Some(SIZE)));
    assert_eq!(copy.store.entries(0, SIZE).await.unwrap(), log.db_entries().await);
}

/// The database is rolled back under a running ledger (say, restored from a
/// backup of 60 entries) and another server appends 10 entries to it: the
/// head is back at 70, the size this ledger last signed, but over another
/// tree. The ledger must notice before it signs a checkpoint over its own
/// tree on top of entries it did not sequence; the compare-and-swap on the
/// size alone cannot see it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_notices_a_rewrite_back_to_the_size_it_knew() {
    let log = TestLog::with_entries(N).await;
    exec(log.pool(), "DELETE FROM log_entries WHERE idx >= ?", &[60]).await;
    exec(log.pool(), "DELETE FROM log_checkpoints WHERE size > ?", &[60]).await;
    exec(log.pool(), "UPDATE log_head SET size = ? WHERE id = 1", &[60]).await;
    let other = open_store(&log.db).await;
    let server_b = open_ledger(&other, None, &log.clock).await;
    assert_eq!(server_b.append_all((1000..1010).map(draft).collect()).await.unwrap().checkpoint_size, N);
    server_b.shutdown().await;
    log.verify().await.expect("the rewritten log is itself a valid log");
    let res = log.ledger().append(draft(2000)).await;
    assert!(matches!(&res, Err(AppendError::Fatal(_))), "the stale ledger appended: {res:?}");
    log.verify().await.expect("the stale ledger broke the log");
}
