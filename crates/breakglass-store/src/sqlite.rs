//! The SQLite implementation of [`LogStore`]: WAL journal, `synchronous=FULL`
//! (a commit is on disk before it returns), and a compare-and-swap on the
//! head row, taken under `BEGIN IMMEDIATE` so that writers in several
//! processes serialise instead of forking the log.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use breakglass_tlog::Hash;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection as _, Row as _};

use crate::{
    EntryRecord, HeadState, LogStore, Mutation, ObjectFilter, StateObject, StoreError, StoredCheckpoint,
    blob_to_hashes, effective_limit, hashes_to_blob,
};

/// Schema migrations, applied in order and recorded in `schema_migrations`.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE log_entries (
         idx INTEGER PRIMARY KEY,
         hashes BLOB NOT NULL,
         data BLOB NOT NULL
     );
     CREATE TABLE log_checkpoints (
         size INTEGER PRIMARY KEY,
         root BLOB NOT NULL,
         note TEXT NOT NULL
     );
     CREATE TABLE log_head (
         id INTEGER PRIMARY KEY CHECK (id = 1),
         size INTEGER NOT NULL
     );
     INSERT INTO log_head (id, size) VALUES (1, 0);",
    ),
    (2, crate::STATE_MIGRATION),
];

/// How the database is opened.
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenOptions {
    /// Create the database file (and apply migrations) if it is missing.
    pub create: bool,
    /// Open read-only: for auditors' commands, which must change nothing.
    pub read_only: bool,
}

#[derive(Debug)]
pub struct SqliteStore {
    /// Readers share the pool.
    pool: SqlitePool,
    /// The one write connection of this process: appends never wait for a
    /// pooled connection or its health check.
    writer: Option<tokio::sync::Mutex<SqliteConnection>>,
}

fn i(v: u64) -> i64 {
    i64::try_from(v).expect("log sizes fit in i64")
}

fn u(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative value {v} in the log tables")))
}

impl SqliteStore {
    pub async fn open(path: &Path, opts: OpenOptions) -> Result<SqliteStore, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
            hint: "run 'breakglass init' or pass --data-dir",
        };
        if !opts.create && !path.exists() {
            return Err(open_err(sqlx::Error::Configuration("the database file does not exist".into())));
        }
        let mut connect = SqliteConnectOptions::from_str("sqlite://")
            .map_err(open_err)?
            .filename(path)
            .create_if_missing(opts.create)
            .busy_timeout(Duration::from_secs(10))
            .read_only(opts.read_only);
        if !opts.read_only {
            connect = connect.journal_mode(SqliteJournalMode::Wal).synchronous(SqliteSynchronous::Full);
        }
        // 1 MiB of page cache per connection instead of SQLite's 2 MiB: the
        // log's readers keep their own cache of stored hashes, and an idle
        // server should stay small.
        connect = connect.pragma("cache_size", "-1024");
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .min_connections(1)
            .test_before_acquire(false)
            .connect_with(connect.clone())
            .await
            .map_err(open_err)?;
        let writer = if opts.read_only {
            None
        } else {
            Some(tokio::sync::Mutex::new(SqliteConnection::connect_with(&connect).await.map_err(open_err)?))
        };
        let store = SqliteStore { pool, writer };
        if !opts.read_only {
            store.migrate().await?;
        }
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)")
            .execute(&mut *tx)
            .await?;
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations").fetch_all(&mut *tx).await?;
        for (version, sql) in MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            sqlx::raw_sql(*sql).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO schema_migrations (version) VALUES (?)").bind(version).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The write connection, or an error for a store opened read-only.
    fn writer(&self) -> Result<&tokio::sync::Mutex<SqliteConnection>, StoreError> {
        self.writer
            .as_ref()
            .ok_or_else(|| StoreError::Db(sqlx::Error::Configuration("the database was opened read-only".into())))
    }

    /// The pool, for tests and tools that inspect the raw tables.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub async fn close(&self) {
        if let Some(w) = &self.writer {
            // Closing the connection runs SQLite's final checkpoint.
            let mut w = w.lock().await;
            let _ = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&mut *w).await;
        }
        self.pool.close().await;
    }
}

/// The `idx` and parsed `hashes` columns of a `log_entries` row.
fn index_and_hashes(row: &sqlx::sqlite::SqliteRow) -> Result<(u64, Vec<Hash>), StoreError> {
    let index = u(row.try_get("idx")?)?;
    let blob: Vec<u8> = row.try_get("hashes")?;
    Ok((index, blob_to_hashes(index, &blob)?))
}

fn object_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<StateObject, StoreError> {
    Ok(StateObject {
        kind: row.try_get("kind")?,
        id: row.try_get("id")?,
        version: u(row.try_get("version")?)?,
        status: row.try_get("status")?,
        owner: row.try_get("owner")?,
        due: row.try_get("due")?,
        body: row.try_get("body")?,
    })
}

fn checkpoint_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<StoredCheckpoint, StoreError> {
    let size = u(row.try_get("size")?)?;
    let root: Vec<u8> = row.try_get("root")?;
    let root = Hash::from_slice(&root)
        .ok_or_else(|| StoreError::Corrupt(format!("checkpoint {size}: root is not 32 bytes")))?;
    Ok(StoredCheckpoint { size, root, note: row.try_get("note")? })
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// Applies mutation number `k` of a list inside the caller's transaction, by
/// compare-and-swap on its version, and links the object to the log indexes
/// in `log` (none for [`LogStore::update_objects`]). A version that does not
/// match is a [`StoreError::Conflict`] naming `k`; the caller must then roll
/// back, since the list's earlier mutations have been applied.
async fn apply_mutation(
    conn: &mut SqliteConnection,
    k: usize,
    m: &Mutation,
    log: std::ops::Range<u64>,
) -> Result<(), StoreError> {
    let changed = if m.expected_version == 0 {
        sqlx::query(
            "INSERT INTO state_objects (kind, id, version, status, owner, due, body)
             VALUES (?1, ?2, 1, ?3, ?4, ?5, ?6) ON CONFLICT (kind, id) DO NOTHING",
        )
        .bind(&m.kind)
        .bind(&m.id)
        .bind(&m.status)
        .bind(&m.owner)
        .bind(m.due)
        .bind(&m.body)
    } else {
        sqlx::query(
            "UPDATE state_objects SET version = version + 1, status = ?3, owner = ?4, due = ?5, body = ?6
             WHERE kind = ?1 AND id = ?2 AND version = ?7",
        )
        .bind(&m.kind)
        .bind(&m.id)
        .bind(&m.status)
        .bind(&m.owner)
        .bind(m.due)
        .bind(&m.body)
        .bind(i(m.expected_version))
    }
    .execute(&mut *conn)
    .await?;
    if changed.rows_affected() != 1 {
        return Err(StoreError::Conflict {
            mutation: k,
            kind: m.kind.clone(),
            id: m.id.clone(),
            expected_version: m.expected_version,
        });
    }
    for idx in log {
        sqlx::query("INSERT OR IGNORE INTO state_log (kind, id, idx) VALUES (?, ?, ?)")
            .bind(&m.kind)
            .bind(&m.id)
            .bind(i(idx))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Inserts a whole batch in one statement, whatever its size: the hashes and
/// the entry bytes travel as two concatenated blobs, and a JSON array of
/// `[hash offset, hash length, data offset, data length]` (1-based, for
/// SQLite's `substr`) cuts them apart. One statement means one round trip to
/// the database thread and one cached prepared statement.
const INSERT_BATCH: &str = "INSERT INTO log_entries (idx, hashes, data)
     SELECT ?1 + j.key,
            substr(?2, json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]')),
            substr(?3, json_extract(j.value, '$[2]'), json_extract(j.value, '$[3]'))
     FROM json_each(?4) AS j";

#[async_trait]
impl LogStore for SqliteStore {
    async fn head_state(&self) -> Result<HeadState, StoreError> {
        // One statement is one read snapshot in SQLite.
        let row = sqlx::query(
            "SELECT h.size AS head, c.size AS size, c.root AS root, c.note AS note
             FROM log_head h
             LEFT JOIN log_checkpoints c ON c.size = (SELECT max(size) FROM log_checkpoints)
             WHERE h.id = 1",
        )
        .fetch_one(&self.pool)
        .await?;
        let size = u(row.try_get("head")?)?;
        let has_checkpoint = row.try_get::<Option<i64>, _>("size")?.is_some();
        let checkpoint = if has_checkpoint { Some(checkpoint_from_row(&row)?) } else { None };
        Ok(HeadState { size, checkpoint })
    }

    async fn append_with(
        &self,
        expected_size: u64,
        expected_root: &Hash,
        records: &[EntryRecord],
        checkpoint: &StoredCheckpoint,
        mutations: &[(Mutation, std::ops::Range<u64>)],
    ) -> Result<(), StoreError> {
        debug_assert!(records.iter().enumerate().all(|(k, r)| r.index == expected_size + k as u64));
        debug_assert_eq!(checkpoint.size, expected_size + records.len() as u64);
        let mut conn = self.writer()?.lock().await;
        // IMMEDIATE takes the write lock now, so the compare-and-swap below
        // cannot interleave with another process's append.
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let moved = sqlx::query(
            "UPDATE log_head SET size = ?1 WHERE id = 1 AND size = ?2
               AND coalesce((SELECT root FROM log_checkpoints WHERE size = ?2), ?3) = ?4",
        )
        .bind(i(checkpoint.size))
        .bind(i(expected_size))
        .bind(breakglass_tlog::hash::empty_root().0.to_vec())
        .bind(expected_root.0.to_vec())
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() != 1 {
            tx.rollback().await?;
            return Err(StoreError::HeadMoved { expected: expected_size });
        }
        let mut hashes = Vec::with_capacity(records.len() * 64);
        let mut data = Vec::with_capacity(records.iter().map(|r| r.data.len()).sum());
        let mut cuts = String::with_capacity(records.len() * 24 + 2);
        cuts.push('[');
        for (k, r) in records.iter().enumerate() {
            let h = hashes_to_blob(&r.hashes);
            if k > 0 {
                cuts.push(',');
            }
            cuts.push_str(&format!("[{},{},{},{}]", hashes.len() + 1, h.len(), data.len() + 1, r.data.len()));
            hashes.extend_from_slice(&h);
            data.extend_from_slice(&r.data);
        }
        cuts.push(']');
        if let Some(first) = records.first() {
            let inserted = sqlx::query(INSERT_BATCH)
                .bind(i(first.index))
                .bind(hashes)
                .bind(data)
                .bind(cuts)
                .execute(&mut *tx)
                .await?;
            if inserted.rows_affected() != records.len() as u64 {
                return Err(StoreError::Corrupt(format!(
                    "inserted {} of {} entries",
                    inserted.rows_affected(),
                    records.len()
                )));
            }
        }
        sqlx::query("INSERT INTO log_checkpoints (size, root, note) VALUES (?, ?, ?)")
            .bind(i(checkpoint.size))
            .bind(checkpoint.root.0.to_vec())
            .bind(&checkpoint.note)
            .execute(&mut *tx)
            .await?;
        for (k, (m, log)) in mutations.iter().enumerate() {
            if let Err(e) = apply_mutation(&mut tx, k, m, log.clone()).await {
                tx.rollback().await?;
                return Err(e);
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn update_objects(&self, mutations: &[Mutation]) -> Result<(), StoreError> {
        let writer = self.writer()?;
        if mutations.is_empty() {
            return Ok(());
        }
        let mut conn = writer.lock().await;
        // The same write lock as an append's, so that the two serialise, here
        // and with other processes.
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        for (k, m) in mutations.iter().enumerate() {
            if let Err(e) = apply_mutation(&mut tx, k, m, 0..0).await {
                tx.rollback().await?;
                return Err(e);
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn object(&self, kind: &str, id: &str) -> Result<Option<StateObject>, StoreError> {
        let row = sqlx::query(
            "SELECT kind, id, version, status, owner, due, body FROM state_objects WHERE kind = ? AND id = ?",
        )
        .bind(kind)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(object_from_row).transpose()
    }

    async fn objects(&self, kind: &str, filter: &ObjectFilter) -> Result<Vec<StateObject>, StoreError> {
        let rows = sqlx::query(
            "SELECT kind, id, version, status, owner, due, body FROM state_objects
             WHERE kind = ?1 AND (?2 IS NULL OR owner = ?2)
               AND (?3 = '[]' OR status IN (SELECT value FROM json_each(?3)))
             ORDER BY id DESC LIMIT ?4",
        )
        .bind(kind)
        .bind(filter.owner.as_deref())
        .bind(serde_json::to_string(&filter.statuses).expect("strings serialise"))
        .bind(effective_limit(filter.limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(object_from_row).collect()
    }

    async fn due_objects(
        &self,
        kind: &str,
        statuses: &[&str],
        until: i64,
        limit: u32,
    ) -> Result<Vec<StateObject>, StoreError> {
        let rows = sqlx::query(
            "SELECT kind, id, version, status, owner, due, body FROM state_objects
             WHERE kind = ?1 AND due IS NOT NULL AND due <= ?2
               AND status IN (SELECT value FROM json_each(?3))
             ORDER BY due LIMIT ?4",
        )
        .bind(kind)
        .bind(until)
        .bind(serde_json::to_string(statuses).expect("strings serialise"))
        .bind(effective_limit(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(object_from_row).collect()
    }

    async fn next_due(&self, kind: &str, statuses: &[&str]) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT min(due) FROM state_objects
             WHERE kind = ?1 AND due IS NOT NULL AND status IN (SELECT value FROM json_each(?2))",
        )
        .bind(kind)
        .bind(serde_json::to_string(statuses).expect("strings serialise"))
        .fetch_one(&self.pool)
        .await?)
    }

    async fn object_log(&self, kind: &str, id: &str) -> Result<Vec<u64>, StoreError> {
        let rows: Vec<i64> = sqlx::query_scalar("SELECT idx FROM state_log WHERE kind = ? AND id = ? ORDER BY idx")
            .bind(kind)
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(u).collect()
    }

    async fn hashes_of(&self, entries: &[u64]) -> Result<Vec<(u64, Vec<Hash>)>, StoreError> {
        let list = serde_json::to_string(entries).expect("numbers serialise");
        // One row back, whatever the number of entries: the database thread
        // hands over one value instead of streaming a row per entry.
        let packed: Option<String> = sqlx::query_scalar(
            "SELECT group_concat(idx || ':' || hex(hashes), ',') FROM log_entries
             WHERE idx IN (SELECT value FROM json_each(?))",
        )
        .bind(list)
        .fetch_one(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(entries.len());
        for item in packed.as_deref().unwrap_or_default().split(',').filter(|s| !s.is_empty()) {
            let parsed = item.split_once(':').and_then(|(idx, hex)| Some((idx.parse::<u64>().ok()?, decode_hex(hex)?)));
            let Some((idx, blob)) = parsed else {
                return Err(StoreError::Corrupt(format!("unreadable stored hashes {item:?}")));
            };
            out.push((idx, blob_to_hashes(idx, &blob)?));
        }
        Ok(out)
    }

    async fn entry_hashes(&self, start: u64, end: u64) -> Result<Vec<(u64, Vec<Hash>)>, StoreError> {
        let rows = sqlx::query("SELECT idx, hashes FROM log_entries WHERE idx >= ? AND idx < ? ORDER BY idx")
            .bind(i(start))
            .bind(i(end.min(i64::MAX as u64)))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(index_and_hashes).collect()
    }

    async fn entries(&self, start: u64, end: u64) -> Result<Vec<EntryRecord>, StoreError> {
        let rows = sqlx::query("SELECT idx, hashes, data FROM log_entries WHERE idx >= ? AND idx < ? ORDER BY idx")
            .bind(i(start))
            .bind(i(end.min(i64::MAX as u64)))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let (index, hashes) = index_and_hashes(row)?;
                Ok(EntryRecord { index, hashes, data: row.try_get("data")? })
            })
            .collect()
    }

    async fn checkpoints(&self, after: u64, limit: u32) -> Result<Vec<StoredCheckpoint>, StoreError> {
        let rows = sqlx::query("SELECT size, root, note FROM log_checkpoints WHERE size > ? ORDER BY size LIMIT ?")
            .bind(i(after))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(checkpoint_from_row).collect()
    }

    async fn checkpoint(&self, size: u64) -> Result<Option<StoredCheckpoint>, StoreError> {
        let row = sqlx::query("SELECT size, root, note FROM log_checkpoints WHERE size = ?")
            .bind(i(size))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(checkpoint_from_row).transpose()
    }
}
