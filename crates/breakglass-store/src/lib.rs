//! breakglass-store: durable storage for breakglass.
//!
//! - [`LogStore`] is the storage contract of the audit log, written down so
//!   that SQLite ([`sqlite`]) and PostgreSQL pass one conformance suite.
//! - [`ledger::Ledger`] is the log's single sequencer per process: it batches
//!   concurrent appends (group commit), computes the new stored hashes and the
//!   signed checkpoint, commits them with a compare-and-swap on the head, copies
//!   them to the JSON-lines [`sink`], and only then acknowledges.
//! - [`reader::LogReader`] serves entries, checkpoints and proofs.
//! - [`verify`] recomputes a whole log, or the part after a checkpoint
//!   verified earlier ([`anchor`]: what a server checks at start);
//!   [`export`] writes the tlog-tiles layout.
//! - The service's state (grants, API tokens, sessions, used login
//!   challenges) is a table of versioned [`StateObject`]s that changes only
//!   through [`Mutation`]s committed in the same transaction as the log
//!   entries that record them ([`LogStore::append_with`]). Bookkeeping
//!   objects that are not audit events (a notification's delivery attempts)
//!   change by the same compare-and-swap without a log entry
//!   ([`LogStore::update_objects`]).

pub mod anchor;
pub mod export;
pub mod ledger;
pub mod postgres;
pub mod reader;
pub mod sink;
pub mod sqlite;
pub mod verify;

use async_trait::async_trait;
use breakglass_tlog::Hash;

/// One log entry as stored: its index, its canonical bytes, and the stored
/// hashes its append produced (leaf hash first, then each subtree it
/// completed), which occupy storage indexes
/// `stored_hash_index(0, index) .. stored_hash_index(0, index + 1)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryRecord {
    pub index: u64,
    pub data: Vec<u8>,
    pub hashes: Vec<Hash>,
}

/// A signed checkpoint as stored: size, root and the exact signed note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCheckpoint {
    pub size: u64,
    pub root: Hash,
    pub note: String,
}

/// The head row and the latest checkpoint, read together in one snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeadState {
    /// The size in the head row (what the compare-and-swap moves).
    pub size: u64,
    /// The checkpoint with the largest size, if any.
    pub checkpoint: Option<StoredCheckpoint>,
}

/// One object of the service's state: a grant, an API token, a session, a
/// used login challenge. `body` is the object as JSON; `status`, `owner` and
/// `due` are copied out of it so that the store can index them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateObject {
    pub kind: String,
    pub id: String,
    /// 1 when created; each mutation adds one.
    pub version: u64,
    pub status: String,
    /// Whose it is (the grantee, the token's creator); "" when nobody's.
    pub owner: String,
    /// When something must next happen to it (a grant's expiry, a pending
    /// request's lapse), in milliseconds since the epoch.
    pub due: Option<i64>,
    pub body: String,
}

/// A change to one state object, committed only together with the log
/// entries of the same append ([`LogStore::append_with`]; for bookkeeping
/// objects only, on its own with [`LogStore::update_objects`]), and only if
/// the object is still at `expected_version` (0: it must not exist yet).
/// This compare-and-swap is what keeps two servers from activating or
/// expiring a grant twice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mutation {
    pub kind: String,
    pub id: String,
    pub expected_version: u64,
    pub status: String,
    pub owner: String,
    pub due: Option<i64>,
    pub body: String,
}

impl Mutation {
    /// The version the object has after this mutation.
    pub fn new_version(&self) -> u64 {
        self.expected_version + 1
    }
}

/// Which state objects to list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectFilter {
    /// Only these statuses (all when empty).
    pub statuses: Vec<String>,
    /// Only this owner.
    pub owner: Option<String>,
    /// At most this many, newest first (by id, which sorts by time for
    /// breakglass's ids); 0 means 1000.
    pub limit: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A mutation's compare-and-swap failed: the object changed (or was
    /// created) since it was read. Nothing of the append was committed.
    #[error("{kind} {id} changed concurrently (expected version {expected_version})")]
    Conflict { mutation: usize, kind: String, id: String, expected_version: u64 },
    /// The compare-and-swap on the head failed: another sequencer appended.
    #[error("the log head moved: expected size {expected}, another writer appended first")]
    HeadMoved { expected: u64 },
    #[error("the log is corrupt: {0}")]
    Corrupt(String),
    /// A stored entry that cannot even be read as a record (for example a
    /// hashes blob of the wrong length): tampering at a known index.
    #[error("the log is corrupt at entry {index}: {problem}")]
    CorruptEntry { index: u64, problem: String },
    #[error("cannot open database at {path}: {source} (hint: {hint})")]
    Open { path: String, source: sqlx::Error, hint: &'static str },
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("io error on {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// The storage contract of the audit log.
///
/// Every implementation must guarantee:
/// 1. **Append-only, compare-and-swap head.** [`LogStore::append`] commits
///    the records, the checkpoint and the new head in one durable transaction
///    if and only if the head is still `expected_size` with root
///    `expected_root`; otherwise it changes nothing and returns
///    [`StoreError::HeadMoved`]. Two writers (threads,
///    processes or servers) can therefore never fork the log.
/// 2. **Durable before acknowledged.** When `append` returns `Ok`, the data
///    survives a crash or power loss (SQLite: WAL with `synchronous=FULL`).
/// 3. **Contiguity.** Records passed to `append` start at `expected_size` and
///    are consecutive; the checkpoint's size is the new head size.
/// 4. **Reads see only committed data**, and never a partial batch.
/// 5. **Nothing is rewritten.** No method updates or deletes an entry or a
///    checkpoint; only the head row moves, forward.
#[async_trait]
pub trait LogStore: Send + Sync + 'static {
    /// The head row and the latest checkpoint in one consistent read, so that
    /// a writer committing in between cannot make them look inconsistent.
    async fn head_state(&self) -> Result<HeadState, StoreError>;

    /// The latest checkpoint, or `None` for an empty log.
    async fn head(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        Ok(self.head_state().await?.checkpoint)
    }

    /// The size in the head row (which must equal the latest checkpoint's
    /// size; `audit verify` checks that it does).
    async fn head_size(&self) -> Result<u64, StoreError> {
        Ok(self.head_state().await?.size)
    }

    /// Atomically appends `records` and `checkpoint` if the head is at
    /// `expected_size` and the checkpoint stored at that size has root
    /// `expected_root` (the empty-tree root for size 0). Comparing the root
    /// as well as the size means a log rolled back and regrown to the same
    /// size elsewhere (an ABA) is not mistaken for the tree this writer knew.
    async fn append(
        &self,
        expected_size: u64,
        expected_root: &Hash,
        records: &[EntryRecord],
        checkpoint: &StoredCheckpoint,
    ) -> Result<(), StoreError> {
        self.append_with(expected_size, expected_root, records, checkpoint, &[]).await
    }

    /// [`LogStore::append`], and in the same transaction the state
    /// `mutations`, each linked to the log indexes in its range. The head's
    /// compare-and-swap is checked first ([`StoreError::HeadMoved`]); then
    /// each mutation's version, in order: the first that fails aborts the
    /// whole transaction with [`StoreError::Conflict`] naming it.
    async fn append_with(
        &self,
        expected_size: u64,
        expected_root: &Hash,
        records: &[EntryRecord],
        checkpoint: &StoredCheckpoint,
        mutations: &[(Mutation, std::ops::Range<u64>)],
    ) -> Result<(), StoreError>;

    /// Applies `mutations` (compare-and-swap by version, as in `append_with`) in one transaction,
    /// without any log entry. For bookkeeping objects only (a notification's delivery state): a
    /// change that must be audited goes through `append_with`. The first mutation whose expected
    /// version does not match aborts the whole transaction with `StoreError::Conflict` naming it;
    /// nothing is changed then.
    ///
    /// Each mutation behaves exactly as in [`LogStore::append_with`]: expected version 0 creates
    /// the object at version 1 (a conflict if it exists), any other must equal the current
    /// version, which becomes `expected_version + 1`, and `status`, `owner`, `due` and `body` are
    /// replaced. The log, its head and every object's [`LogStore::object_log`] are untouched, and
    /// versions are shared with `append_with`, so the two may change the same object in turn.
    /// On SQLite it takes the same write lock as an append; an empty list changes nothing.
    async fn update_objects(&self, mutations: &[Mutation]) -> Result<(), StoreError>;

    /// One state object, if it exists.
    async fn object(&self, kind: &str, id: &str) -> Result<Option<StateObject>, StoreError>;

    /// State objects of a kind, newest id first.
    async fn objects(&self, kind: &str, filter: &ObjectFilter) -> Result<Vec<StateObject>, StoreError>;

    /// Objects of a kind with `due <= until` and one of `statuses`, soonest
    /// first, at most `limit`.
    async fn due_objects(
        &self,
        kind: &str,
        statuses: &[&str],
        until: i64,
        limit: u32,
    ) -> Result<Vec<StateObject>, StoreError>;

    /// The earliest `due` among objects of a kind with one of `statuses`.
    async fn next_due(&self, kind: &str, statuses: &[&str]) -> Result<Option<i64>, StoreError>;

    /// The log indexes of the entries that recorded changes to an object, in order.
    async fn object_log(&self, kind: &str, id: &str) -> Result<Vec<u64>, StoreError>;

    /// The stored hashes of the entries with these indexes, in any order;
    /// entries that do not exist are simply absent.
    async fn hashes_of(&self, entries: &[u64]) -> Result<Vec<(u64, Vec<Hash>)>, StoreError>;

    /// Reads stored hashes by storage index, in the order asked, with one
    /// query. A missing hash is [`StoreError::Corrupt`].
    async fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, StoreError> {
        if indexes.is_empty() {
            return Ok(Vec::new());
        }
        // Each stored hash lives in the blob of the entry whose append made it.
        let located: Vec<(u64, usize)> = indexes
            .iter()
            .map(|&idx| {
                let (level, n) = breakglass_tlog::tree::split_stored_hash_index(idx);
                (breakglass_tlog::tree::record_of(level, n), level as usize)
            })
            .collect();
        let mut entries: Vec<u64> = located.iter().map(|l| l.0).collect();
        entries.sort_unstable();
        entries.dedup();
        let by_entry: std::collections::HashMap<u64, Vec<Hash>> = self.hashes_of(&entries).await?.into_iter().collect();
        located
            .iter()
            .zip(indexes)
            .map(|(&(entry, level), &idx)| {
                by_entry.get(&entry).and_then(|h| h.get(level)).copied().ok_or_else(|| {
                    StoreError::Corrupt(format!("stored hash {idx} (entry {entry}, level {level}) is missing"))
                })
            })
            .collect()
    }

    /// The stored hashes of entries with `start <= index < end`, in index
    /// order, without their data (fewer if the log is shorter).
    async fn entry_hashes(&self, start: u64, end: u64) -> Result<Vec<(u64, Vec<Hash>)>, StoreError>;

    /// Entries with `start <= index < end`, in index order (fewer if the log is shorter).
    async fn entries(&self, start: u64, end: u64) -> Result<Vec<EntryRecord>, StoreError>;

    /// Checkpoints with `size > after`, in size order, at most `limit`.
    async fn checkpoints(&self, after: u64, limit: u32) -> Result<Vec<StoredCheckpoint>, StoreError>;

    /// The checkpoint of exactly this size, if one was stored.
    async fn checkpoint(&self, size: u64) -> Result<Option<StoredCheckpoint>, StoreError>;
}

/// The migration that adds the state tables; the same SQL on both databases.
pub(crate) const STATE_MIGRATION: &str = "CREATE TABLE state_objects (
         kind TEXT NOT NULL,
         id TEXT NOT NULL,
         version BIGINT NOT NULL,
         status TEXT NOT NULL,
         owner TEXT NOT NULL,
         due BIGINT,
         body TEXT NOT NULL,
         PRIMARY KEY (kind, id)
     );
     CREATE INDEX state_objects_owner ON state_objects (kind, owner, status);
     CREATE INDEX state_objects_due ON state_objects (kind, due) WHERE due IS NOT NULL;
     CREATE TABLE state_log (
         kind TEXT NOT NULL,
         id TEXT NOT NULL,
         idx BIGINT NOT NULL,
         PRIMARY KEY (kind, id, idx)
     );";

pub(crate) fn effective_limit(limit: u32) -> i64 {
    if limit == 0 { 1000 } else { i64::from(limit.min(10_000)) }
}

pub fn hashes_to_blob(hashes: &[Hash]) -> Vec<u8> {
    hashes.iter().flat_map(|h| h.0).collect()
}

pub fn blob_to_hashes(index: u64, blob: &[u8]) -> Result<Vec<Hash>, StoreError> {
    if blob.is_empty() || !blob.len().is_multiple_of(32) {
        return Err(StoreError::CorruptEntry {
            index,
            problem: format!("its stored hashes are {} bytes, not a non-zero multiple of 32", blob.len()),
        });
    }
    Ok(blob.chunks_exact(32).map(|c| Hash(c.try_into().expect("chunk of 32"))).collect())
}
