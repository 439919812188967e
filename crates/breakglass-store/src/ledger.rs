//! The ledger: the audit log's sequencer, with group commit.
//!
//! Security: whoever can write the database or the JSON-lines copy behind
//! the server may rewrite either; the sequencer holds the invariants that make the log tamper-evident and fail-closed:
//! - An append is acknowledged only after its batch is durable in the store,
//!   covered by a signed checkpoint, and copied to the file sink.
//! - A checkpoint is signed only over a tree that extends the previous signed
//!   tree: the sequencer appends to the in-memory frontier whose root it has
//!   checked against the last checkpoint, and when another writer moved the
//!   head it verifies a consistency proof from what it knew to the new head
//!   before it signs anything again.
//! - The head moves by compare-and-swap ([`LogStore::append`]), so two
//!   sequencers, in two processes or on two servers, never fork the log.
//! - Any inconsistency it finds is fatal: the ledger stops accepting appends
//!   rather than limp on (every later append fails with [`AppendError::Fatal`]).
//!
//! Group commit: appenders send requests over a channel; the sequencer takes
//! whatever has queued while the previous batch was committing (up to
//! `max_batch` entries) and commits it as one transaction. The batch is
//! adaptive: when it is less than half the size of the previous batch (many
//! appenders are active, but their next entries are still on their way), it
//! waits up to `linger` (1 ms) for it to fill to that size. A lone appender
//! at a low rate never waits: its batches are all of size one.
//!
//! State mutations ride with entries: [`Ledger::append_with`] commits a
//! request's entries and its [`Mutation`]s in one transaction. When a
//! mutation's compare-and-swap fails, only that request is refused (with
//! [`AppendError::Conflict`]); the rest of its batch is committed without it.
//!
//! Durability is pipelined: once a batch is committed to the database, it is
//! handed to the sink thread, which writes and fsyncs it and then
//! acknowledges it, while the sequencer already commits the next batch. The
//! pipeline is [`SINK_DEPTH`] batches deep and no deeper (the sequencer
//! reserves the sink's slot before it commits), so a crash leaves at most
//! the last `SINK_DEPTH` batches of a process out of the sink.
//!
//! At open, when [`LedgerConfig::verified`] names the file of the checkpoint
//! verified last ([`crate::anchor`]), the ledger first verifies the log from
//! that checkpoint (the whole log when there is none) and refuses to open a
//! log that fails, before it copies anything to the sink. It then repairs
//! the sink; a repair larger than the crash window (the sink lacked entries
//! it must have held) is written to the log as `log.sink_repaired`, reported
//! at error level and kept in [`OpenReport`] for the drift check. Then it
//! saves the verified checkpoint, and does the same at a clean shutdown.

use std::path::PathBuf;
use std::sync::Arc;

use breakglass_entry::entry::{Entry, EntryDraft, EntryError};
use breakglass_entry::time::{Clock, Timestamp};
use breakglass_tlog::checkpoint::Checkpoint;
use breakglass_tlog::hash::leaf_hash;
use breakglass_tlog::note::NoteSigner;
use breakglass_tlog::proof::verify_consistency;
use breakglass_tlog::tree::Frontier;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::reader::{LogReader, ReadError};
use crate::sink::FileSink;
use crate::verify::{SinkFloor, VerifyError, VerifyFailure, VerifyOptions, VerifyPlan, verify_log_planned};
use crate::{EntryRecord, LogStore, Mutation, StoreError, StoredCheckpoint};

/// How many committed batches of one process may be missing from the sink
/// at a crash: the one being written and fsynced, and the next, committed
/// meanwhile. A sink shorter than that lost acknowledged entries.
pub const SINK_DEPTH: usize = 2;

/// The kind of the entry that records a repair beyond the crash window.
pub const SINK_REPAIRED_KIND: &str = "log.sink_repaired";

/// Ledger settings.
#[derive(Clone, Debug)]
pub struct LedgerConfig {
    /// The checkpoint origin line, and the signing key's name.
    pub origin: String,
    /// The most entries committed in one transaction.
    pub max_batch: usize,
    /// The JSON-lines copy of the log, if any.
    pub sink: Option<PathBuf>,
    /// How long a batch may wait to fill up when it is much smaller than the
    /// previous one (adaptive group commit; see the module comment).
    pub linger: std::time::Duration,
    /// The file of the checkpoint this data directory verified last
    /// ([`crate::anchor`]): when set, the log is verified from it at open
    /// and it is advanced at open and at shutdown.
    pub verified: Option<PathBuf>,
    /// Every writer of this log writes this one sink (SQLite in one data
    /// directory): then a sink lacking more than the last [`SINK_DEPTH`]
    /// batches lost entries. False for PostgreSQL, where each server's sink
    /// lags the other servers' appends (only the saved checkpoint bounds it).
    pub sink_shared: bool,
}

impl LedgerConfig {
    pub fn new(origin: impl Into<String>) -> LedgerConfig {
        LedgerConfig {
            origin: origin.into(),
            max_batch: 256,
            sink: None,
            linger: std::time::Duration::from_millis(1),
            verified: None,
            sink_shared: true,
        }
    }
}

/// What [`Ledger::open`] checked and repaired.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// The entries verified at open, `from..to` (from the saved checkpoint,
    /// or 0 on a first start), when [`LedgerConfig::verified`] is set.
    pub verified: Option<(u64, u64)>,
    /// Entries the sink lacked and that were copied back from the database.
    pub sink_repair: Option<SinkRepair>,
}

/// A sink caught up at open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkRepair {
    pub path: PathBuf,
    /// Entries the sink held.
    pub had: u64,
    /// The log's size it was brought to.
    pub size: u64,
    /// It lacked more than a crash can explain: the copy was truncated,
    /// emptied, replaced or lost.
    pub beyond_window: bool,
    /// The index of the `log.sink_repaired` entry that records it.
    pub recorded_at: Option<u64>,
}

/// What an acknowledged append returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The index of the first entry of this request.
    pub index: u64,
    /// How many entries this request appended.
    pub count: u64,
    /// The size of the signed checkpoint that covers them.
    pub checkpoint_size: u64,
    /// The time stamped on the entries.
    pub time: Timestamp,
}

#[derive(Clone, Debug, thiserror::Error)]
pub enum AppendError {
    #[error("invalid log entry: {0}")]
    Invalid(#[from] EntryError),
    #[error("the audit log is halted after a fatal error, no entry can be appended: {0}")]
    Fatal(String),
    #[error("append failed and was not acknowledged: {0}")]
    Failed(String),
    #[error("the audit log is shut down")]
    Closed,
    /// A state mutation's compare-and-swap failed: the object changed since
    /// the caller read it. Nothing of this request was written; re-read and retry.
    #[error("{kind} {id} was changed concurrently; nothing was written")]
    Conflict { kind: String, id: String },
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sink(#[from] crate::sink::SinkError),
    #[error("the audit log is inconsistent: {0}")]
    Fatal(String),
    /// The log failed its verification at open: nothing was appended.
    #[error("the audit log failed its check at open ({checked}): {failure}; nothing was appended or copied")]
    Verify { checked: String, failure: VerifyFailure },
    #[error(transparent)]
    Anchor(#[from] crate::anchor::AnchorError),
}

type Reply = oneshot::Sender<Result<Receipt, AppendError>>;

struct Request {
    drafts: Vec<EntryDraft>,
    mutations: Vec<Mutation>,
    reply: Reply,
}

/// A committed batch on its way to the sink; acknowledged once it is there.
struct SinkJob {
    records: Vec<EntryRecord>,
    end: u64,
    replies: Vec<(Reply, Receipt)>,
}

/// The sink runs on its own thread, so that writing and fsyncing batch k
/// overlaps with committing batch k+1. Batches arrive, and are acknowledged,
/// in commit order.
fn sink_thread(
    mut sink: FileSink,
    store: Arc<dyn LogStore>,
    handle: tokio::runtime::Handle,
    mut rx: mpsc::Receiver<SinkJob>,
) {
    while let Some(job) = rx.blocking_recv() {
        let t = std::time::Instant::now();
        let res = sink
            .sync(
                &job.records,
                job.end,
                |a, b| handle.block_on(store.entries(a, b)),
                || handle.block_on(store.head_size()),
            )
            .map(|_| ());
        tracing::debug!(
            entries = job.records.len(),
            sink_us = t.elapsed().as_micros() as u64,
            "batch copied to the sink"
        );
        let start = job.records.first().map_or(job.end, |r| r.index);
        for (reply, receipt) in job.replies {
            let _ = reply.send(match &res {
                Ok(()) => Ok(receipt),
                Err(e) => Err(AppendError::Failed(format!(
                    "entries {start}..{} are in the database but could not be copied to the sink: {e}",
                    job.end
                ))),
            });
        }
    }
}

/// A handle to the sequencer. Cheap to clone; all clones feed one sequencer.
#[derive(Clone)]
pub struct Ledger {
    tx: mpsc::Sender<Request>,
    reader: LogReader,
    stop: Arc<tokio::sync::watch::Sender<bool>>,
    /// The sequencer task; it returns the reason it halted, if it did.
    task: Arc<Mutex<Option<tokio::task::JoinHandle<Option<String>>>>>,
    report: Arc<OpenReport>,
    config: Arc<LedgerConfig>,
}

impl Ledger {
    /// Opens the ledger over a store: verifies the log from the saved
    /// checkpoint when [`LedgerConfig::verified`] is set, checks the latest
    /// checkpoint's signature, rebuilds the frontier and checks it against
    /// that checkpoint, catches the sink up (recording a repair beyond the
    /// crash window), saves the verified checkpoint, and starts the sequencer.
    pub async fn open(
        store: Arc<dyn LogStore>,
        signer: NoteSigner,
        clock: Arc<dyn Clock>,
        config: LedgerConfig,
    ) -> Result<Ledger, OpenError> {
        let reader = LogReader::new(store.clone(), config.origin.clone(), signer.verifier());
        // Verify before anything is written, to the sink or the database, so a
        // tampered entry is never copied to the off-database copy nor extended.
        let anchor = match &config.verified {
            Some(path) => Some((path.clone(), crate::anchor::load(path, &config.origin, &signer.verifier())?)),
            None => None,
        };
        let mut verified_size = None;
        let mut report = OpenReport::default();
        if let Some((path, saved)) = &anchor {
            let start = saved.as_ref().map(|a| &a.checkpoint);
            let checked = match start {
                Some(cp) => format!("from the checkpoint of size {} saved in {}", cp.size, path.display()),
                None => format!("the whole log: {} does not exist yet", path.display()),
            };
            let t = std::time::Instant::now();
            let plan = VerifyPlan { start, sink_floor: SinkFloor::default() };
            let opts = VerifyOptions { since: None, sink: config.sink.as_deref() };
            let v = verify_log_planned(&reader, opts, plan).await.map_err(|e| match e {
                VerifyError::Failed(failure) => OpenError::Verify { checked, failure },
                VerifyError::Store(e) => OpenError::Store(e),
                e => OpenError::Fatal(e.to_string()),
            })?;
            tracing::info!(
                from = v.from,
                to = v.size,
                ms = t.elapsed().as_millis() as u64,
                "audit log verified at open"
            );
            report.verified = Some((v.from, v.size));
            verified_size = Some(v.size);
        }
        let sink = config.sink.as_deref().map(FileSink::open).transpose()?;
        let handle = tokio::runtime::Handle::current();
        let mut seq = Sequencer {
            store,
            reader: reader.clone(),
            signer,
            clock,
            origin: config.origin.clone(),
            max_batch: config.max_batch.max(1),
            linger: config.linger,
            last_batch: 0,
            frontier: Frontier::default(),
            head: None,
            last_time: Timestamp(i64::MIN),
            sink_tx: None,
            sink_thread: None,
            fatal: None,
            dirty: false,
        };
        seq.reload().await.map_err(|e| match e {
            AppendError::Fatal(m) => OpenError::Fatal(m),
            other => OpenError::Fatal(other.to_string()),
        })?;
        let size = seq.frontier.size();
        if let Some(mut sink) = sink {
            // Catch the sink up with entries committed before it was last written
            // (a crash between commit and sink, or another process's appends).
            let (store, h) = (seq.store.clone(), handle.clone());
            let (sink, had) = tokio::task::spawn_blocking(move || {
                sink.sync(&[], size, |a, b| h.block_on(store.entries(a, b)), || h.block_on(store.head_size()))
                    .map(|had| (sink, had))
            })
            .await
            .expect("sink catch-up panicked")?;
            if had < size {
                let saved_size = anchor.as_ref().and_then(|(_, a)| a.as_ref()).map_or(0, |a| a.checkpoint.size);
                let beyond_window = had < saved_size
                    || (config.sink_shared && batches_after(&seq.store, had, size).await? > SINK_DEPTH);
                report.sink_repair =
                    Some(SinkRepair { path: sink.path().to_owned(), had, size, beyond_window, recorded_at: None });
            }
            let (tx, rx) = mpsc::channel(1);
            let store = seq.store.clone();
            let thread = std::thread::Builder::new()
                .name("breakglass-sink".into())
                .spawn(move || sink_thread(sink, store, handle, rx))
                .map_err(|e| OpenError::Fatal(format!("cannot start the sink thread: {e}")))?;
            seq.sink_tx = Some(tx);
            seq.sink_thread = Some(thread);
        }
        let store = seq.store.clone();
        let (tx, rx) = mpsc::channel(8192);
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(seq.run(rx, stop_rx));
        let mut ledger = Ledger {
            tx,
            reader,
            stop: Arc::new(stop),
            task: Arc::new(Mutex::new(Some(task))),
            report: Arc::default(),
            config: Arc::new(config),
        };
        if let Some(repair) = &mut report.sink_repair {
            let lacked = repair.size - repair.had;
            if repair.beyond_window {
                tracing::error!(
                    sink = %repair.path.display(),
                    had = repair.had,
                    size = repair.size,
                    "THE AUDIT LOG'S JSON-LINES COPY LACKED {lacked} ENTRIES, more than a crash can leave out (the last {SINK_DEPTH} batches): it was truncated, emptied or replaced; they were copied back from the database and the repair is recorded in the log"
                );
                let draft = EntryDraft::new(
                    "breakglass",
                    SINK_REPAIRED_KIND,
                    serde_json::json!({
                        "sink": repair.path.display().to_string(),
                        "had": repair.had,
                        "size": repair.size,
                        "lacked": lacked,
                        "window_batches": SINK_DEPTH,
                    }),
                );
                let receipt = ledger.append(draft).await.map_err(|e| {
                    OpenError::Fatal(format!(
                        "the sink repair of {lacked} entries could not be recorded in the log: {e}"
                    ))
                })?;
                repair.recorded_at = Some(receipt.index);
            } else {
                tracing::info!(
                    sink = %repair.path.display(),
                    had = repair.had,
                    size = repair.size,
                    "copied {lacked} entries of the batches in flight at the last stop to the sink"
                );
            }
        }
        if let (Some((path, _)), Some(verified)) = (&anchor, verified_size) {
            save_verified(&store, path, verified).await?;
        }
        ledger.report = Arc::new(report);
        Ok(ledger)
    }

    /// What the open verified and repaired.
    pub fn open_report(&self) -> &OpenReport {
        &self.report
    }

    /// Appends one entry and waits until it is durable and checkpointed.
    pub async fn append(&self, draft: EntryDraft) -> Result<Receipt, AppendError> {
        self.append_all(vec![draft]).await
    }

    /// Appends entries atomically (all in one batch, consecutive indexes).
    pub async fn append_all(&self, drafts: Vec<EntryDraft>) -> Result<Receipt, AppendError> {
        self.append_with(drafts, Vec::new()).await
    }

    /// Appends entries atomically together with state mutations: both are
    /// committed in one transaction, or neither is. Fails with
    /// [`AppendError::Conflict`] when a mutation's expected version is stale.
    pub async fn append_with(&self, drafts: Vec<EntryDraft>, mutations: Vec<Mutation>) -> Result<Receipt, AppendError> {
        // Bad input is refused here, before it reaches the sequencer, so it
        // can never fail someone else's batch.
        for d in &drafts {
            d.validate()?;
        }
        if drafts.is_empty() {
            return Err(AppendError::Failed("no entries to append".into()));
        }
        let (reply, rx) = oneshot::channel();
        self.tx.send(Request { drafts, mutations, reply }).await.map_err(|_| AppendError::Closed)?;
        rx.await.map_err(|_| AppendError::Closed)?
    }

    pub fn reader(&self) -> &LogReader {
        &self.reader
    }

    /// Stops accepting appends (from every clone of this handle: later
    /// appends fail with [`AppendError::Closed`]), finishes what is already
    /// queued, and waits for the sequencer and the sink to finish.
    /// With [`LedgerConfig::verified`] set, it then verifies the entries
    /// appended since the saved checkpoint (bringing the sink up to date
    /// first) and saves the new head, so the next open has little to check.
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        let Some(t) = self.task.lock().await.take() else { return };
        let halted = t.await.unwrap_or_else(|e| Some(format!("the sequencer failed: {e}")));
        if let Some(why) = halted {
            tracing::error!(reason = %why, "the audit log halted; the saved checkpoint was not advanced");
            return;
        }
        if let Err(e) = self.advance_verified().await {
            tracing::error!(error = %e, "the checkpoint verified last was not advanced at shutdown; the next start verifies more");
        }
    }

    /// Verifies from the saved checkpoint to the head, with the sink caught
    /// up to the head, and saves the head as the new saved checkpoint.
    async fn advance_verified(&self) -> Result<(), OpenError> {
        let Some(path) = &self.config.verified else { return Ok(()) };
        let store = self.reader.store().clone();
        let saved = crate::anchor::load(path, &self.config.origin, self.reader.verifier())?;
        let size = store.head_size().await?;
        if let Some(sink_path) = self.config.sink.clone() {
            let (store, h) = (store.clone(), tokio::runtime::Handle::current());
            tokio::task::spawn_blocking(move || {
                FileSink::open(&sink_path)?.sync(
                    &[],
                    size,
                    |a, b| h.block_on(store.entries(a, b)),
                    || h.block_on(store.head_size()),
                )
            })
            .await
            .expect("sink catch-up panicked")?;
        }
        let start = saved.as_ref().map(|a| &a.checkpoint);
        let checked = format!("at shutdown, from {}", start.map_or(0, |c| c.size));
        let plan = VerifyPlan { start, sink_floor: SinkFloor::default() };
        let opts = VerifyOptions { since: None, sink: self.config.sink.as_deref() };
        let v = verify_log_planned(&self.reader, opts, plan).await.map_err(|e| match e {
            VerifyError::Failed(failure) => OpenError::Verify { checked, failure },
            VerifyError::Store(e) => OpenError::Store(e),
            e => OpenError::Fatal(e.to_string()),
        })?;
        // The sink holds `size` entries; later ones (another writer's) are
        // verified but not yet copied, so the saved checkpoint stops at `size`.
        save_verified(&store, path, v.size.min(size)).await
    }
}

/// How many batches (checkpoints) of a log of `size` entries end after `had`,
/// counting at most one more than the crash window.
async fn batches_after(store: &Arc<dyn LogStore>, had: u64, size: u64) -> Result<usize, StoreError> {
    let cps = store.checkpoints(had, SINK_DEPTH as u32 + 1).await?;
    Ok(cps.iter().filter(|c| c.size <= size).count())
}

/// Saves the checkpoint of `size` (verified by the caller) as the anchor.
async fn save_verified(store: &Arc<dyn LogStore>, path: &std::path::Path, size: u64) -> Result<(), OpenError> {
    if size == 0 {
        return Ok(());
    }
    let cp = store
        .checkpoint(size)
        .await?
        .ok_or_else(|| OpenError::Fatal(format!("the verified checkpoint of size {size} is no longer stored")))?;
    crate::anchor::save(path, &cp.note)?;
    Ok(())
}

struct Sequencer {
    store: Arc<dyn LogStore>,
    reader: LogReader,
    signer: NoteSigner,
    clock: Arc<dyn Clock>,
    origin: String,
    max_batch: usize,
    linger: std::time::Duration,
    last_batch: usize,
    frontier: Frontier,
    /// The last checkpoint this sequencer signed or verified.
    head: Option<StoredCheckpoint>,
    last_time: Timestamp,
    sink_tx: Option<mpsc::Sender<SinkJob>>,
    sink_thread: Option<std::thread::JoinHandle<()>>,
    fatal: Option<String>,
    /// Set when a commit failed in a way that leaves the store's state unknown.
    dirty: bool,
}

const MAX_CAS_RETRIES: usize = 1000;

impl Sequencer {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Request>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> Option<String> {
        loop {
            let next = if *stop.borrow() {
                // The stop may have been seen here first, before the branch
                // below closed the channel: close it (again) so draining ends.
                rx.close();
                rx.recv().await
            } else {
                tokio::select! {
                    r = rx.recv() => r,
                    _ = stop.changed() => {
                        // Refuse new requests; drain the ones already queued.
                        rx.close();
                        continue;
                    }
                }
            };
            let Some(first) = next else { break };
            let mut n = first.drafts.len();
            let mut batch = vec![first];
            while n < self.max_batch {
                match rx.try_recv() {
                    Ok(r) => {
                        n += r.drafts.len();
                        batch.push(r);
                    }
                    Err(_) => break,
                }
            }
            let want = self.last_batch.min(self.max_batch);
            if n < want / 2 {
                let deadline = tokio::time::Instant::now() + self.linger;
                while n < want {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(r)) => {
                            n += r.drafts.len();
                            batch.push(r);
                        }
                        _ => break,
                    }
                }
            }
            self.last_batch = n;
            let mut work: Vec<(Vec<EntryDraft>, Vec<Mutation>)> =
                batch.iter_mut().map(|r| (std::mem::take(&mut r.drafts), std::mem::take(&mut r.mutations))).collect();
            // Reserve the sink's slot before committing, so no more than
            // SINK_DEPTH committed batches are ever waiting for the sink.
            let permit = match &self.sink_tx {
                Some(tx) => match tx.clone().reserve_owned().await {
                    Ok(p) => Some(p),
                    Err(_) => {
                        for r in batch {
                            let _ = r.reply.send(Err(AppendError::Closed));
                        }
                        continue;
                    }
                },
                None => None,
            };
            // A request whose mutation conflicts is refused alone; the rest
            // of the batch is committed without it.
            let res = loop {
                match self.commit(&work).await {
                    Err(CommitError::Conflict { request, kind, id }) => {
                        work.remove(request);
                        let _ = batch.remove(request).reply.send(Err(AppendError::Conflict { kind, id }));
                        if work.is_empty() {
                            break None;
                        }
                    }
                    Err(CommitError::Append(e)) => break Some(Err(e)),
                    Ok(done) => break Some(Ok(done)),
                }
            };
            let Some(res) = res else { continue };
            match res {
                Ok((receipts, records, end)) => {
                    let replies: Vec<(Reply, Receipt)> = batch.into_iter().map(|r| r.reply).zip(receipts).collect();
                    match permit {
                        Some(permit) => {
                            permit.send(SinkJob { records, end, replies });
                        }
                        None => {
                            for (reply, receipt) in replies {
                                let _ = reply.send(Ok(receipt));
                            }
                        }
                    }
                }
                Err(e) => {
                    for r in batch {
                        let _ = r.reply.send(Err(e.clone()));
                    }
                }
            }
        }
        // Let the sink finish what it was given, then stop it.
        drop(self.sink_tx.take());
        if let Some(t) = self.sink_thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        self.fatal.take()
    }

    fn halt(&mut self, why: String) -> AppendError {
        tracing::error!(reason = %why, "audit log halted: no further appends will be accepted");
        self.fatal = Some(why.clone());
        AppendError::Fatal(why)
    }

    /// Re-reads the head from the store and checks that it extends what this
    /// sequencer knew, then rebuilds the frontier.
    async fn reload(&mut self) -> Result<(), AppendError> {
        let failed = |e: ReadError| AppendError::Failed(e.to_string());
        let head = match self.reader.head().await {
            Ok(h) => Some(h),
            Err(ReadError::Empty) => None,
            Err(ReadError::BadCheckpoint(why)) => return Err(self.halt(why)),
            Err(e) => return Err(failed(e)),
        };
        let size = head.as_ref().map_or(0, |h| h.size);
        if let Some(old) = self.head.clone() {
            if size < old.size {
                return Err(self.halt(format!("the log shrank from {} to {size} entries", old.size)));
            }
            let new_root = head.as_ref().map(|h| h.root).unwrap_or_default();
            let proof = if size > old.size {
                self.reader.prove_consistency(old.size, size).await.map_err(failed)?
            } else {
                Vec::new()
            };
            if verify_consistency(old.size, size, &old.root.0, &new_root.0, &proof).is_err() {
                return Err(self.halt(format!(
                    "checkpoint {size} is not consistent with checkpoint {} this server saw: the log was forked or rewritten",
                    old.size
                )));
            }
        }
        let frontier = self.reader.frontier(size).await.map_err(failed)?;
        if let Some(h) = &head
            && frontier.root() != h.root
        {
            return Err(self.halt(format!("stored hashes do not match checkpoint {size}")));
        }
        self.frontier = frontier;
        self.head = head;
        self.dirty = false;
        Ok(())
    }

    /// Commits one batch; returns the receipts (in request order), the
    /// records, and the new log size.
    async fn commit(
        &mut self,
        requests: &[(Vec<EntryDraft>, Vec<Mutation>)],
    ) -> Result<(Vec<Receipt>, Vec<EntryRecord>, u64), CommitError> {
        if let Some(why) = &self.fatal {
            return Err(AppendError::Fatal(why.clone()).into());
        }
        if self.dirty {
            self.reload().await?;
        }
        for _ in 0..MAX_CAS_RETRIES {
            // The frontier we extend must be the tree of the last signed checkpoint.
            let expected_root = self.head.as_ref().map(|h| h.root).unwrap_or_else(breakglass_tlog::hash::empty_root);
            if self.frontier.root() != expected_root {
                return Err(self.halt("the in-memory tree no longer matches the last checkpoint".into()).into());
            }
            let time = self.clock.now().max(self.last_time);
            let start = self.frontier.size();
            let mut frontier = self.frontier.clone();
            let mut records = Vec::with_capacity(requests.iter().map(|r| r.0.len()).sum());
            let mut receipts = Vec::with_capacity(requests.len());
            let mut mutations = Vec::new();
            // Which request each mutation belongs to, to refuse only that one on a conflict.
            let mut owner_of = Vec::new();
            for (k, (drafts, muts)) in requests.iter().enumerate() {
                let first = frontier.size();
                for d in drafts {
                    let index = frontier.size();
                    let data = Entry::sequence(d.clone(), index, time).encode().map_err(AppendError::from)?;
                    let hashes = frontier.append(leaf_hash(&data));
                    records.push(EntryRecord { index, data, hashes });
                }
                for m in muts {
                    mutations.push((m.clone(), first..frontier.size()));
                    owner_of.push(k);
                }
                receipts.push(Receipt { index: first, count: drafts.len() as u64, checkpoint_size: 0, time });
            }
            let t_prepared = std::time::Instant::now();
            let cp = Checkpoint { origin: self.origin.clone(), size: frontier.size(), root: frontier.root() };
            let note = cp.sign(&self.signer).map_err(|e| self.halt(format!("cannot sign checkpoint: {e}")))?;
            let stored = StoredCheckpoint { size: cp.size, root: cp.root, note };
            let t_signed = std::time::Instant::now();
            match self.store.append_with(start, &expected_root, &records, &stored, &mutations).await {
                Ok(()) => {}
                Err(StoreError::HeadMoved { .. }) => {
                    self.reload().await?;
                    continue;
                }
                Err(StoreError::Conflict { mutation, kind, id, .. }) => {
                    // The transaction was rolled back: the head and the
                    // frontier are as they were.
                    return Err(CommitError::Conflict { request: owner_of[mutation], kind, id });
                }
                Err(e) => {
                    self.dirty = true;
                    return Err(AppendError::Failed(e.to_string()).into());
                }
            }
            self.frontier = frontier;
            self.head = Some(stored);
            self.last_time = time;
            for r in &mut receipts {
                r.checkpoint_size = cp.size;
            }
            tracing::debug!(
                entries = records.len(),
                prepare_us = (t_signed - t_prepared).as_micros() as u64,
                commit_us = t_signed.elapsed().as_micros() as u64,
                "batch committed"
            );
            return Ok((receipts, records, cp.size));
        }
        Err(AppendError::Failed(format!("gave up after {MAX_CAS_RETRIES} compare-and-swap retries")).into())
    }
}

enum CommitError {
    Append(AppendError),
    Conflict { request: usize, kind: String, id: String },
}

impl From<AppendError> for CommitError {
    fn from(e: AppendError) -> CommitError {
        CommitError::Append(e)
    }
}
