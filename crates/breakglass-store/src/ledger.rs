//! The ledger: the audit log's sequencer, with group commit.
//!
//! This is a pretty important and security sensitive part of the code. It
//! holds the invariants that make the log tamper-evident and fail-closed:
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
//! acknowledges it, while the sequencer already commits the next batch.

use std::path::PathBuf;
use std::sync::Arc;

use breakglass_core::checkpoint::Checkpoint;
use breakglass_core::entry::{Entry, EntryDraft, EntryError};
use breakglass_core::hash::leaf_hash;
use breakglass_core::note::NoteSigner;
use breakglass_core::proof::verify_consistency;
use breakglass_core::time::{Clock, Timestamp};
use breakglass_core::tree::Frontier;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::reader::{LogReader, ReadError};
use crate::sink::FileSink;
use crate::{EntryRecord, LogStore, Mutation, StoreError, StoredCheckpoint};

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
}

impl LedgerConfig {
    pub fn new(origin: impl Into<String>) -> LedgerConfig {
        LedgerConfig { origin: origin.into(), max_batch: 256, sink: None, linger: std::time::Duration::from_millis(1) }
    }
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
        let res = sink.sync(
            &job.records,
            job.end,
            |a, b| handle.block_on(store.entries(a, b)),
            || handle.block_on(store.head_size()),
        );
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
    task: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl Ledger {
    /// Opens the ledger over a store: checks the latest checkpoint's
    /// signature, rebuilds the frontier and checks it against that
    /// checkpoint, catches the sink up, and starts the sequencer task.
    pub async fn open(
        store: Arc<dyn LogStore>,
        signer: NoteSigner,
        clock: Arc<dyn Clock>,
        config: LedgerConfig,
    ) -> Result<Ledger, OpenError> {
        let reader = LogReader::new(store.clone(), config.origin.clone(), signer.verifier());
        let sink = config.sink.as_deref().map(FileSink::open).transpose()?;
        let handle = tokio::runtime::Handle::current();
        let mut seq = Sequencer {
            store,
            reader: reader.clone(),
            signer,
            clock,
            origin: config.origin,
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
        if let Some(mut sink) = sink {
            // Catch the sink up with entries committed before it was last written
            // (a crash between commit and sink, or another process's appends).
            let size = seq.frontier.size();
            let (store, h) = (seq.store.clone(), handle.clone());
            let sink = tokio::task::spawn_blocking(move || {
                sink.sync(&[], size, |a, b| h.block_on(store.entries(a, b)), || h.block_on(store.head_size()))
                    .map(|()| sink)
            })
            .await
            .expect("sink catch-up panicked")?;
            let (tx, rx) = mpsc::channel(2);
            let store = seq.store.clone();
            let thread = std::thread::Builder::new()
                .name("breakglass-sink".into())
                .spawn(move || sink_thread(sink, store, handle, rx))
                .map_err(|e| OpenError::Fatal(format!("cannot start the sink thread: {e}")))?;
            seq.sink_tx = Some(tx);
            seq.sink_thread = Some(thread);
        }
        let (tx, rx) = mpsc::channel(8192);
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(seq.run(rx, stop_rx));
        Ok(Ledger { tx, reader, stop: Arc::new(stop), task: Arc::new(Mutex::new(Some(task))) })
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
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        if let Some(t) = self.task.lock().await.take() {
            let _ = t.await;
        }
    }
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
    async fn run(mut self, mut rx: mpsc::Receiver<Request>, mut stop: tokio::sync::watch::Receiver<bool>) {
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
                    match &self.sink_tx {
                        Some(tx) => {
                            if let Err(unsent) = tx.send(SinkJob { records, end, replies }).await {
                                for (reply, _) in unsent.0.replies {
                                    let _ = reply.send(Err(AppendError::Closed));
                                }
                            }
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
            let expected_root = self.head.as_ref().map(|h| h.root).unwrap_or_else(breakglass_core::hash::empty_root);
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
