//! The log test harness: a temp dir with a SQLite store, a ledger with a
//! JSON-lines sink, a clock moved by hand (the testkit's), and helpers to append, read the
//! raw tables, tamper with them and recompute trees independently.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use breakglass_entry::entry::{Entry, EntryDraft};
use breakglass_entry::time::Clock;
use breakglass_store::ledger::{Ledger, LedgerConfig, OpenError, Receipt, SINK_DEPTH};
use breakglass_store::reader::LogReader;
use breakglass_store::sqlite::{OpenOptions, SqliteStore};
use breakglass_store::verify::{
    SinkFloor, VerifyError, VerifyFailure, VerifyOptions, VerifyPlan, VerifyReport, verify_log, verify_log_planned,
};
use breakglass_store::{EntryRecord, LogStore};
pub use breakglass_testkit::clock::ManualClock;
use breakglass_tlog::Hash;
use breakglass_tlog::hash::{empty_root, node_hash};
use breakglass_tlog::note::NoteSigner;
use serde_json::json;
use tempfile::TempDir;

pub const ORIGIN: &str = "example.test/breakglass-it";
pub const SEED: [u8; 32] = [7; 32];
/// 2026-11-21T12:00:00.000Z, the time every test log starts at.
pub const T0: i64 = 1_795_262_400_000;

pub fn signer() -> NoteSigner {
    NoteSigner::from_seed(ORIGIN, &SEED).expect("valid signer")
}

/// The draft of test entry `n`: its data names `n`, so every entry differs.
pub fn draft(n: u64) -> EntryDraft {
    EntryDraft::new(format!("engineer-{}", n % 7), "test.append", json!({ "n": n, "note": format!("entry {n}") }))
}

pub async fn open_store(db: &Path) -> Arc<SqliteStore> {
    Arc::new(SqliteStore::open(db, OpenOptions { create: true, read_only: false }).await.expect("open store"))
}

pub async fn try_open_ledger(
    store: &Arc<SqliteStore>,
    sink: Option<&Path>,
    clock: &Arc<ManualClock>,
) -> Result<Ledger, OpenError> {
    let mut config = LedgerConfig::new(ORIGIN);
    config.sink = sink.map(Path::to_owned);
    Ledger::open(store.clone() as Arc<dyn LogStore>, signer(), clock.clone() as Arc<dyn Clock>, config).await
}

pub async fn open_ledger(store: &Arc<SqliteStore>, sink: Option<&Path>, clock: &Arc<ManualClock>) -> Ledger {
    try_open_ledger(store, sink, clock).await.expect("open ledger")
}

pub fn reader_for(store: &Arc<SqliteStore>) -> LogReader {
    LogReader::new(store.clone() as Arc<dyn LogStore>, ORIGIN, signer().verifier())
}

/// Chunk sizes used to build logs: varied, so that checkpoints land on
/// many different sizes (powers of two and not).
const CHUNKS: &[u64] = &[1, 7, 2, 16, 3, 31, 5, 1, 64, 11];

/// A temp dir holding `log.db` and the sink `audit.jsonl`, with a ledger.
pub struct TestLog {
    pub dir: TempDir,
    pub db: PathBuf,
    pub sink: PathBuf,
    pub clock: Arc<ManualClock>,
    pub store: Arc<SqliteStore>,
    /// `None` once stopped.
    ledger: Option<Ledger>,
    /// How many entries this harness appended (the next draft number).
    pub appended: u64,
}

impl TestLog {
    pub async fn new() -> TestLog {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("log.db");
        let sink = dir.path().join("audit.jsonl");
        let clock = ManualClock::new(T0);
        let store = open_store(&db).await;
        let ledger = open_ledger(&store, Some(&sink), &clock).await;
        TestLog { dir, db, sink, clock, store, ledger: Some(ledger), appended: 0 }
    }

    /// A log of `n` entries, appended in batches of varied sizes.
    pub async fn with_entries(n: u64) -> TestLog {
        let mut log = TestLog::new().await;
        log.append_n(n).await;
        log
    }

    /// Appends `n` more entries (drafts numbered on from the last), in
    /// batches of [`CHUNKS`] sizes; returns each batch's receipt.
    pub async fn append_n(&mut self, n: u64) -> Vec<Receipt> {
        let mut receipts = Vec::new();
        let end = self.appended + n;
        let mut k = 0;
        while self.appended < end {
            let chunk = CHUNKS[k % CHUNKS.len()].min(end - self.appended);
            k += 1;
            // Time moves one millisecond per batch.
            self.clock.set(T0 + self.appended as i64);
            let drafts = (self.appended..self.appended + chunk).map(draft).collect();
            let receipt = self.ledger().append_all(drafts).await.expect("append");
            assert_eq!((receipt.index, receipt.count), (self.appended, chunk));
            self.appended += chunk;
            receipts.push(receipt);
        }
        receipts
    }

    pub fn ledger(&self) -> &Ledger {
        self.ledger.as_ref().expect("the ledger was stopped")
    }

    pub fn reader(&self) -> LogReader {
        reader_for(&self.store)
    }

    pub fn pool(&self) -> &sqlx::SqlitePool {
        self.store.pool()
    }

    pub async fn verify(&self) -> Result<VerifyReport, VerifyError> {
        verify_log(&self.reader(), VerifyOptions::default()).await
    }

    pub async fn verify_with_sink(&self) -> Result<VerifyReport, VerifyError> {
        verify_log(&self.reader(), VerifyOptions { since: None, sink: Some(&self.sink) }).await
    }

    /// Stops the ledger (its sink thread has written everything acknowledged)
    /// but keeps the store open for reading and tampering.
    pub async fn stop_ledger(&mut self) {
        if let Some(ledger) = self.ledger.take() {
            ledger.shutdown().await;
        }
    }

    /// Shuts the ledger down and closes the store; the files stay in `dir`.
    pub async fn close(self) -> ClosedLog {
        let TestLog { dir, db, sink, clock, store, ledger, appended } = self;
        if let Some(ledger) = ledger {
            ledger.shutdown().await;
        }
        store.close().await;
        drop(store);
        ClosedLog { dir, db, sink, clock, appended }
    }

    pub async fn db_entries(&self) -> Vec<EntryRecord> {
        self.store.entries(0, u64::MAX).await.expect("read entries")
    }

    pub async fn head_size(&self) -> u64 {
        self.store.head_size().await.expect("head size")
    }

    /// Asserts the sink holds exactly the stored entries, in order.
    pub async fn assert_sink_matches_db(&self) {
        let entries = self.db_entries().await;
        let lines = sink_lines(&self.sink);
        assert_eq!(lines.len(), entries.len(), "sink lines vs stored entries");
        for (line, e) in lines.iter().zip(&entries) {
            assert_eq!(line, &e.data, "sink line {} differs from the stored entry", e.index);
        }
    }
}

/// A log whose ledger and store are closed; reopen it with [`ClosedLog::reopen`].
pub struct ClosedLog {
    pub dir: TempDir,
    pub db: PathBuf,
    pub sink: PathBuf,
    pub clock: Arc<ManualClock>,
    pub appended: u64,
}

impl ClosedLog {
    pub async fn try_reopen(self) -> Result<TestLog, (ClosedLog, OpenError)> {
        let store = open_store(&self.db).await;
        match try_open_ledger(&store, Some(&self.sink), &self.clock).await {
            Ok(ledger) => Ok(TestLog {
                dir: self.dir,
                db: self.db,
                sink: self.sink,
                clock: self.clock,
                store,
                ledger: Some(ledger),
                appended: self.appended,
            }),
            Err(e) => {
                store.close().await;
                Err((self, e))
            }
        }
    }

    pub async fn reopen(self) -> TestLog {
        match self.try_reopen().await {
            Ok(log) => log,
            Err((_, e)) => panic!("reopen failed: {e}"),
        }
    }
}

/// The lines of a sink file, without their newlines; a missing file has none.
pub fn sink_lines(path: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap_or_default();
    assert!(bytes.is_empty() || bytes.ends_with(b"\n"), "sink ends in a partial line");
    bytes.split_inclusive(|b| *b == b'\n').map(|l| l[..l.len() - 1].to_vec()).collect()
}

/// Unwraps a verification failure, panicking (with the report) if it passed.
pub fn failure(res: Result<VerifyReport, VerifyError>) -> VerifyFailure {
    match res {
        Err(VerifyError::Failed(f)) => f,
        Err(e) => panic!("expected a verification failure, got the error {e}"),
        Ok(report) => panic!("expected a verification failure, but the log verified: {report:?}"),
    }
}

/// Decodes stored entry bytes.
pub fn decode(data: &[u8]) -> Entry {
    Entry::decode(data).expect("stored entry decodes")
}

/// The RFC 9162 Merkle Tree Hash, straight from its recursive definition:
/// MTH({}) = SHA-256(), MTH({d0}) = leaf, MTH(D[n]) = node(MTH(D[0:k]), MTH(D[k:n]))
/// with k the largest power of two smaller than n.
pub fn mth(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let mut k = 1;
            while k * 2 < n {
                k *= 2;
            }
            node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

/// xorshift64*: a small deterministic PRNG for property tests.
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> XorShift {
        XorShift(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

// Raw table access, for tampering.

pub async fn read_blob(pool: &sqlx::SqlitePool, column: Column, idx: u64) -> Vec<u8> {
    let sql = match column {
        Column::Data => "SELECT data FROM log_entries WHERE idx = ?",
        Column::Hashes => "SELECT hashes FROM log_entries WHERE idx = ?",
    };
    sqlx::query_scalar(sql).bind(idx as i64).fetch_one(pool).await.expect("read blob")
}

pub async fn write_blob(pool: &sqlx::SqlitePool, column: Column, idx: u64, bytes: Vec<u8>) {
    let sql = match column {
        Column::Data => "UPDATE log_entries SET data = ? WHERE idx = ?",
        Column::Hashes => "UPDATE log_entries SET hashes = ? WHERE idx = ?",
    };
    let res = sqlx::query(sql).bind(bytes).bind(idx as i64).execute(pool).await.expect("write blob");
    assert_eq!(res.rows_affected(), 1, "no entry {idx} to tamper with");
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    Data,
    Hashes,
}

/// Runs one statement with integer parameters.
pub async fn exec(pool: &sqlx::SqlitePool, sql: &'static str, params: &[i64]) -> u64 {
    let mut q = sqlx::query(sql);
    for p in params {
        q = q.bind(*p);
    }
    q.execute(pool).await.unwrap_or_else(|e| panic!("{sql}: {e}")).rows_affected()
}

pub async fn checkpoint_sizes(pool: &sqlx::SqlitePool) -> Vec<u64> {
    let sizes: Vec<i64> =
        sqlx::query_scalar("SELECT size FROM log_checkpoints ORDER BY size").fetch_all(pool).await.expect("sizes");
    sizes.into_iter().map(|s| s as u64).collect()
}

/// A consistent copy of a log's database and sink, in its own temp dir,
/// with its own store: a fresh victim for one tampering case.
pub struct LogCopy {
    /// Keeps the copy's files alive.
    pub _dir: TempDir,
    pub sink: PathBuf,
    pub store: Arc<SqliteStore>,
}

impl TestLog {
    /// Copies the committed database (`VACUUM INTO`) and the sink.
    pub async fn snapshot(&self) -> LogCopy {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("copy.db");
        let sink = dir.path().join("copy.jsonl");
        sqlx::query("VACUUM INTO ?").bind(db.display().to_string()).execute(self.pool()).await.expect("vacuum into");
        std::fs::copy(&self.sink, &sink).expect("copy sink");
        let store = open_store(&db).await;
        LogCopy { _dir: dir, sink, store }
    }
}

impl LogCopy {
    pub fn reader(&self) -> LogReader {
        reader_for(&self.store)
    }

    pub fn pool(&self) -> &sqlx::SqlitePool {
        self.store.pool()
    }

    pub async fn verify(&self, with_sink: bool) -> Result<VerifyReport, VerifyError> {
        let sink = with_sink.then_some(self.sink.as_path());
        verify_log(&self.reader(), VerifyOptions { since: None, sink }).await
    }
}

/// Issue 14: opens a ledger as a server does: verifying the log from the
/// checkpoint saved in `verified` (the whole log when it does not exist),
/// holding the sink to its crash window when `shared`.
pub async fn try_open_guarded(
    store: &Arc<SqliteStore>,
    sink: &Path,
    verified: &Path,
    shared: bool,
    clock: &Arc<ManualClock>,
) -> Result<Ledger, OpenError> {
    let mut config = LedgerConfig::new(ORIGIN);
    config.sink = Some(sink.to_owned());
    config.verified = Some(verified.to_owned());
    config.sink_shared = shared;
    Ledger::open(store.clone() as Arc<dyn LogStore>, signer(), clock.clone() as Arc<dyn Clock>, config).await
}

impl TestLog {
    /// Where a guarded ledger keeps its saved checkpoint for this log.
    pub fn verified_path(&self) -> PathBuf {
        self.dir.path().join(breakglass_store::anchor::VERIFIED_CHECKPOINT_FILE)
    }

    /// Verifies as `audit verify` does on SQLite: the sink held to its crash
    /// window and to `at_least` (the saved checkpoint's size).
    pub async fn verify_as_auditor(&self, at_least: u64) -> Result<VerifyReport, VerifyError> {
        let floor = SinkFloor { at_least, window: Some(SINK_DEPTH), enforce: true };
        let opts = VerifyOptions { since: None, sink: Some(&self.sink) };
        verify_log_planned(&self.reader(), opts, VerifyPlan { start: None, sink_floor: floor }).await
    }

    /// Keeps only the first `n` lines of the sink.
    pub fn cut_sink_to(&self, n: usize) {
        let mut lines = sink_lines(&self.sink);
        lines.truncate(n);
        write_sink(&self.sink, &lines);
    }
}

/// Writes `lines` as a sink file.
pub fn write_sink(path: &Path, lines: &[Vec<u8>]) {
    let bytes: Vec<u8> = lines.iter().flat_map(|l| l.iter().copied().chain([b'\n'])).collect();
    std::fs::write(path, bytes).expect("write sink");
}
