//! Reading the log: entries, checkpoints and proofs, computed from stored
//! hashes in O(log n) reads.
//!
//! The tree functions of breakglass-core are synchronous and generic over a
//! [`HashReader`]; storage is asynchronous. [`LogReader::with_hashes`]
//! bridges the two: it runs the computation once to learn which hashes it
//! needs, fetches them, and runs it again on the fetched hashes.
//!
//! Stored hashes never change once written, so the reader caches them by
//! block: the hashes of 256 consecutive entries (one tlog tile's worth of
//! leaves, with every subtree they complete); the last block of the log is
//! cached with the entries it had and read again when a newer one is asked. A proof over a million entries touches about three blocks; once they
//! are warm it costs no database round trip at all. The cache is bounded
//! (`BLOCK_CACHE_CAPACITY` blocks, about 16 KiB each).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use breakglass_tlog::Hash;
use breakglass_tlog::checkpoint::Checkpoint;
use breakglass_tlog::note::NoteVerifier;
use breakglass_tlog::tlog_proof::TlogProof;
use breakglass_tlog::tree::{self, Frontier, HashReader, ProveError, TreeError};

use crate::{EntryRecord, LogStore, StoreError, StoredCheckpoint};

/// A hash reader in two phases: first it records what is asked, then it serves prefetched hashes.
pub enum Phase {
    Record(RefCell<Vec<u64>>),
    Serve(HashMap<u64, Hash>),
}

impl HashReader for Phase {
    type Error = StoreError;
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, StoreError> {
        match self {
            Phase::Record(asked) => {
                asked.borrow_mut().extend_from_slice(indexes);
                Ok(vec![Hash::default(); indexes.len()])
            }
            Phase::Serve(map) => indexes
                .iter()
                .map(|i| map.get(i).copied().ok_or_else(|| StoreError::Corrupt(format!("stored hash {i} is missing"))))
                .collect(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error("the log is empty: there is no checkpoint yet")]
    Empty,
    #[error("entry {index} does not exist (the log has {size} entries)")]
    NoSuchEntry { index: u64, size: u64 },
    #[error("the log head does not verify: {0}")]
    BadCheckpoint(String),
}

impl From<ProveError<StoreError>> for ReadError {
    fn from(e: ProveError<StoreError>) -> ReadError {
        match e {
            ProveError::Tree(t) => ReadError::Tree(t),
            ProveError::Read(s) => ReadError::Store(s),
        }
    }
}

/// Entries per cached block.
const BLOCK: u64 = 256;
/// Blocks kept in memory (about 16 KiB each: 64 MiB at most).
pub const BLOCK_CACHE_CAPACITY: usize = 4096;

#[derive(Default)]
struct BlockCache {
    blocks: std::sync::Mutex<HashMap<u64, Arc<Vec<Vec<Hash>>>>>,
}

/// Read access to a log, for servers and auditors alike.
#[derive(Clone)]
pub struct LogReader {
    store: Arc<dyn LogStore>,
    origin: String,
    verifier: NoteVerifier,
    cache: Arc<BlockCache>,
}

impl LogReader {
    pub fn new(store: Arc<dyn LogStore>, origin: impl Into<String>, verifier: NoteVerifier) -> LogReader {
        LogReader { store, origin: origin.into(), verifier, cache: Arc::default() }
    }

    /// Reads stored hashes, from cached blocks where possible.
    pub async fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, StoreError> {
        let located: Vec<(u64, usize)> = indexes
            .iter()
            .map(|&idx| {
                let (level, n) = tree::split_stored_hash_index(idx);
                (tree::record_of(level, n), level as usize)
            })
            .collect();
        let mut blocks: HashMap<u64, Arc<Vec<Vec<Hash>>>> = HashMap::new();
        let mut missing: Vec<u64> = Vec::new();
        {
            let cache = self.cache.blocks.lock().expect("cache lock");
            for &(record, _) in &located {
                let (b, k) = (record / BLOCK, (record % BLOCK) as usize);
                if blocks.get(&b).is_some_and(|block| k < block.len()) || missing.contains(&b) {
                    continue;
                }
                // A cached block may be the log's last, still growing, block:
                // it serves the entries it has, and is read again for newer ones.
                match cache.get(&b) {
                    Some(block) if k < block.len() => {
                        blocks.insert(b, block.clone());
                    }
                    _ => missing.push(b),
                }
            }
        }
        for b in missing {
            let rows = self.store.entry_hashes(b * BLOCK, (b + 1) * BLOCK).await?;
            // Keep the contiguous prefix only: a gap means a missing entry,
            // which must surface as an error rather than shift hashes.
            let block: Vec<Vec<Hash>> = rows
                .into_iter()
                .enumerate()
                .take_while(|(k, r)| r.0 == b * BLOCK + *k as u64)
                .map(|(_, r)| r.1)
                .collect();
            let block = Arc::new(block);
            let mut cache = self.cache.blocks.lock().expect("cache lock");
            if cache.len() >= BLOCK_CACHE_CAPACITY
                && !cache.contains_key(&b)
                && let Some(evict) = cache.keys().next().copied()
            {
                cache.remove(&evict);
            }
            cache.insert(b, block.clone());
            blocks.insert(b, block);
        }
        located
            .iter()
            .zip(indexes)
            .map(|(&(record, offset), &idx)| {
                blocks
                    .get(&(record / BLOCK))
                    .and_then(|block| block.get((record % BLOCK) as usize))
                    .and_then(|hashes| hashes.get(offset))
                    .copied()
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!("stored hash {idx} (entry {record}, level {offset}) is missing"))
                    })
            })
            .collect()
    }

    /// Runs a tree computation against storage: once to learn which hashes it
    /// needs, then on the hashes fetched.
    pub async fn with_hashes<T>(
        &self,
        f: impl Fn(&Phase) -> Result<T, ProveError<StoreError>>,
    ) -> Result<T, ReadError> {
        let record = Phase::Record(RefCell::new(Vec::new()));
        // The first run sees zero hashes; only the indexes it asks for matter.
        let _ = f(&record);
        let Phase::Record(asked) = record else { unreachable!() };
        let mut asked = asked.into_inner();
        asked.sort_unstable();
        asked.dedup();
        let hashes = self.read_hashes(&asked).await?;
        let serve = Phase::Serve(asked.into_iter().zip(hashes).collect());
        Ok(f(&serve)?)
    }

    pub fn store(&self) -> &Arc<dyn LogStore> {
        &self.store
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn verifier(&self) -> &NoteVerifier {
        &self.verifier
    }

    /// The latest checkpoint, with its signature and origin checked, and the
    /// head row (read in the same snapshot) agreeing with it.
    pub async fn head(&self) -> Result<StoredCheckpoint, ReadError> {
        let state = self.store.head_state().await?;
        let Some(head) = state.checkpoint else {
            if state.size != 0 {
                return Err(ReadError::BadCheckpoint(format!(
                    "the head row says size {} but there is no checkpoint",
                    state.size
                )));
            }
            return Err(ReadError::Empty);
        };
        let cp = Checkpoint::open(&head.note, &self.origin, std::slice::from_ref(&self.verifier)).map_err(|e| {
            ReadError::BadCheckpoint(format!("the latest checkpoint is not signed by this log's key: {e}"))
        })?;
        if cp.size != head.size || cp.root != head.root {
            return Err(ReadError::BadCheckpoint(
                "the latest checkpoint's signed size or root differs from its stored columns".into(),
            ));
        }
        if state.size != head.size {
            return Err(ReadError::BadCheckpoint(format!(
                "the head row says size {} but the latest checkpoint is {}",
                state.size, head.size
            )));
        }
        Ok(head)
    }

    /// The size of the log according to its latest checkpoint (0 when empty).
    pub async fn size(&self) -> Result<u64, ReadError> {
        match self.head().await {
            Ok(h) => Ok(h.size),
            Err(ReadError::Empty) => Ok(0),
            Err(e) => Err(e),
        }
    }

    pub async fn entry(&self, index: u64) -> Result<EntryRecord, ReadError> {
        let size = self.size().await?;
        if index >= size {
            return Err(ReadError::NoSuchEntry { index, size });
        }
        let mut rows = self.store.entries(index, index + 1).await?;
        rows.pop().ok_or_else(|| StoreError::Corrupt(format!("entry {index} is missing")).into())
    }

    pub async fn tree_hash(&self, size: u64) -> Result<Hash, ReadError> {
        self.with_hashes(|r| tree::tree_hash(size, r)).await
    }

    pub async fn frontier(&self, size: u64) -> Result<Frontier, ReadError> {
        self.with_hashes(|r| Frontier::load(size, r)).await
    }

    pub async fn prove_inclusion(&self, index: u64, size: u64) -> Result<Vec<Hash>, ReadError> {
        self.with_hashes(|r| tree::prove_inclusion(size, index, r)).await
    }

    pub async fn prove_consistency(&self, old: u64, new: u64) -> Result<Vec<Hash>, ReadError> {
        self.with_hashes(|r| tree::prove_consistency(new, old, r)).await
    }

    /// A `c2sp.org/tlog-proof@v1` for entry `index` against the latest checkpoint.
    pub async fn tlog_proof(&self, index: u64) -> Result<(TlogProof, EntryRecord), ReadError> {
        let head = self.head().await?;
        if index >= head.size {
            return Err(ReadError::NoSuchEntry { index, size: head.size });
        }
        let entry = self.entry(index).await?;
        let hashes = self.prove_inclusion(index, head.size).await?;
        Ok((TlogProof { extra: None, index, hashes, checkpoint: head.note }, entry))
    }
}
