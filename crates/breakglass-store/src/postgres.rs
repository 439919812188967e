//! The PostgreSQL implementation of [`LogStore`], for several servers over
//! one database. Durability is PostgreSQL's (`synchronous_commit=on`, the
//! default). The head moves by the same compare-and-swap as on SQLite: under
//! READ COMMITTED a second writer's `UPDATE log_head … WHERE size = $old`
//! waits for the first to commit, re-reads the row, and updates nothing, so
//! it gets [`StoreError::HeadMoved`] and the log never forks.

use async_trait::async_trait;
use breakglass_tlog::Hash;
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection as _, Row as _};

use crate::{
    EntryRecord, HeadState, LogStore, Mutation, ObjectFilter, StateObject, StoreError, StoredCheckpoint,
    blob_to_hashes, effective_limit, hashes_to_blob,
};

/// Schema migrations, applied in order under an advisory lock so that
/// servers starting together do not race.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE log_entries (
         idx BIGINT PRIMARY KEY,
         hashes BYTEA NOT NULL,
         data BYTEA NOT NULL
     );
     CREATE TABLE log_checkpoints (
         size BIGINT PRIMARY KEY,
         root BYTEA NOT NULL,
         note TEXT NOT NULL
     );
     CREATE TABLE log_head (
         id INTEGER PRIMARY KEY CHECK (id = 1),
         size BIGINT NOT NULL
     );
     INSERT INTO log_head (id, size) VALUES (1, 0);",
    ),
    (2, crate::STATE_MIGRATION),
];

/// An arbitrary constant naming breakglass's migration lock.
const MIGRATION_LOCK: i64 = 0x6272_6b67_6c73_0001;

#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

fn i(v: u64) -> i64 {
    i64::try_from(v).expect("log sizes fit in i64")
}

fn u(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative value {v} in the log tables")))
}

/// The URL without its password, for error messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

impl PostgresStore {
    /// Connects and applies migrations.
    pub async fn open(url: &str) -> Result<PostgresStore, StoreError> {
        let open_err = |source| StoreError::Open {
            path: redact_url(url),
            source,
            hint: "check --database-url (BREAKGLASS_DATABASE_URL) and that the server accepts connections",
        };
        // One direct connection first: a refused or misconfigured connection
        // fails at once, instead of after the pool's acquire timeout.
        let conn = PgConnection::connect(url).await.map_err(open_err)?;
        let _ = conn.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(open_err)?;
        let store = PostgresStore { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(MIGRATION_LOCK).execute(&mut *tx).await?;
        sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY)")
            .execute(&mut *tx)
            .await?;
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations").fetch_all(&mut *tx).await?;
        for (version, sql) in MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            sqlx::raw_sql(*sql).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO schema_migrations (version) VALUES ($1)").bind(version).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The pool, for tests and tools that inspect the raw tables.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn checkpoint_from_row(row: &PgRow) -> Result<StoredCheckpoint, StoreError> {
    let size = u(row.try_get("size")?)?;
    let root: Vec<u8> = row.try_get("root")?;
    let root = Hash::from_slice(&root)
        .ok_or_else(|| StoreError::Corrupt(format!("checkpoint {size}: root is not 32 bytes")))?;
    Ok(StoredCheckpoint { size, root, note: row.try_get("note")? })
}

fn object_from_row(row: &PgRow) -> Result<StateObject, StoreError> {
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

fn index_and_hashes(row: &PgRow) -> Result<(u64, Vec<Hash>), StoreError> {
    let index = u(row.try_get("idx")?)?;
    let blob: Vec<u8> = row.try_get("hashes")?;
    Ok((index, blob_to_hashes(index, &blob)?))
}

/// Applies mutation number `k` of a list inside the caller's transaction, by
/// compare-and-swap on its version, and links the object to the log indexes
/// in `log` (none for [`LogStore::update_objects`]). A version that does not
/// match is a [`StoreError::Conflict`] naming `k`; the caller must then roll
/// back, since the list's earlier mutations have been applied.
///
/// Under READ COMMITTED an UPDATE that waited for another writer's row lock
/// re-checks `version` against the committed row, and an INSERT that
/// collides does nothing: either way the loser changes no row and gets a
/// conflict.
async fn apply_mutation(
    conn: &mut PgConnection,
    k: usize,
    m: &Mutation,
    log: std::ops::Range<u64>,
) -> Result<(), StoreError> {
    let changed = if m.expected_version == 0 {
        sqlx::query(
            "INSERT INTO state_objects (kind, id, version, status, owner, due, body)
             VALUES ($1, $2, 1, $3, $4, $5, $6) ON CONFLICT (kind, id) DO NOTHING",
        )
        .bind(&m.kind)
        .bind(&m.id)
        .bind(&m.status)
        .bind(&m.owner)
        .bind(m.due)
        .bind(&m.body)
    } else {
        sqlx::query(
            "UPDATE state_objects SET version = version + 1, status = $3, owner = $4, due = $5, body = $6
             WHERE kind = $1 AND id = $2 AND version = $7",
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
    if log.is_empty() {
        return Ok(());
    }
    let idx: Vec<i64> = log.map(i).collect();
    sqlx::query(
        "INSERT INTO state_log (kind, id, idx) SELECT $1, $2, x FROM UNNEST($3::BIGINT[]) AS x
         ON CONFLICT DO NOTHING",
    )
    .bind(&m.kind)
    .bind(&m.id)
    .bind(idx)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[async_trait]
impl LogStore for PostgresStore {
    async fn head_state(&self) -> Result<HeadState, StoreError> {
        // One statement sees one snapshot, even under READ COMMITTED.
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
        let mut tx = self.pool.begin().await?;
        // The row lock taken here serialises writers; the loser re-reads the
        // row after the winner commits and matches nothing.
        let moved = sqlx::query(
            "UPDATE log_head SET size = $1 WHERE id = 1 AND size = $2
               AND coalesce((SELECT root FROM log_checkpoints WHERE size = $2), $3) = $4",
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
        let idx: Vec<i64> = records.iter().map(|r| i(r.index)).collect();
        let hashes: Vec<Vec<u8>> = records.iter().map(|r| hashes_to_blob(&r.hashes)).collect();
        let data: Vec<Vec<u8>> = records.iter().map(|r| r.data.clone()).collect();
        let inserted = sqlx::query(
            "INSERT INTO log_entries (idx, hashes, data)
             SELECT * FROM UNNEST($1::BIGINT[], $2::BYTEA[], $3::BYTEA[])",
        )
        .bind(idx)
        .bind(hashes)
        .bind(data)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() != records.len() as u64 {
            return Err(StoreError::Corrupt(format!(
                "inserted {} of {} entries",
                inserted.rows_affected(),
                records.len()
            )));
        }
        sqlx::query("INSERT INTO log_checkpoints (size, root, note) VALUES ($1, $2, $3)")
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
        if mutations.is_empty() {
            return Ok(());
        }
        // No lock on the head: the objects' own row locks and versions are
        // the compare-and-swap, exactly as for an append's mutations.
        let mut tx = self.pool.begin().await?;
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
            "SELECT kind, id, version, status, owner, due, body FROM state_objects WHERE kind = $1 AND id = $2",
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
             WHERE kind = $1 AND ($2::TEXT IS NULL OR owner = $2)
               AND (cardinality($3::TEXT[]) = 0 OR status = ANY($3))
             ORDER BY id DESC LIMIT $4",
        )
        .bind(kind)
        .bind(filter.owner.as_deref())
        .bind(&filter.statuses)
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
        let statuses: Vec<String> = statuses.iter().map(|s| (*s).to_owned()).collect();
        let rows = sqlx::query(
            "SELECT kind, id, version, status, owner, due, body FROM state_objects
             WHERE kind = $1 AND due IS NOT NULL AND due <= $2 AND status = ANY($3)
             ORDER BY due LIMIT $4",
        )
        .bind(kind)
        .bind(until)
        .bind(statuses)
        .bind(effective_limit(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(object_from_row).collect()
    }

    async fn next_due(&self, kind: &str, statuses: &[&str]) -> Result<Option<i64>, StoreError> {
        let statuses: Vec<String> = statuses.iter().map(|s| (*s).to_owned()).collect();
        Ok(sqlx::query_scalar(
            "SELECT min(due) FROM state_objects WHERE kind = $1 AND due IS NOT NULL AND status = ANY($2)",
        )
        .bind(kind)
        .bind(statuses)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn object_log(&self, kind: &str, id: &str) -> Result<Vec<u64>, StoreError> {
        let rows: Vec<i64> = sqlx::query_scalar("SELECT idx FROM state_log WHERE kind = $1 AND id = $2 ORDER BY idx")
            .bind(kind)
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(u).collect()
    }

    async fn hashes_of(&self, entries: &[u64]) -> Result<Vec<(u64, Vec<Hash>)>, StoreError> {
        let entries: Vec<i64> = entries.iter().map(|&e| i(e)).collect();
        let rows = sqlx::query("SELECT idx, hashes FROM log_entries WHERE idx = ANY($1)")
            .bind(entries)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(index_and_hashes).collect()
    }

    async fn entry_hashes(&self, start: u64, end: u64) -> Result<Vec<(u64, Vec<Hash>)>, StoreError> {
        let rows = sqlx::query("SELECT idx, hashes FROM log_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx")
            .bind(i(start))
            .bind(i(end.min(i64::MAX as u64)))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(index_and_hashes).collect()
    }

    async fn entries(&self, start: u64, end: u64) -> Result<Vec<EntryRecord>, StoreError> {
        let rows = sqlx::query("SELECT idx, hashes, data FROM log_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx")
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
        let rows = sqlx::query("SELECT size, root, note FROM log_checkpoints WHERE size > $1 ORDER BY size LIMIT $2")
            .bind(i(after))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(checkpoint_from_row).collect()
    }

    async fn checkpoint(&self, size: u64) -> Result<Option<StoredCheckpoint>, StoreError> {
        let row = sqlx::query("SELECT size, root, note FROM log_checkpoints WHERE size = $1")
            .bind(i(size))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(checkpoint_from_row).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(redact_url("postgres://bg:s3cret@db.internal:5432/bg"), "postgres://bg:***@db.internal:5432/bg");
        assert_eq!(redact_url("postgres://db.internal/bg"), "postgres://db.internal/bg");
        assert!(!redact_url("postgres://u:p@ss:w@h/db").contains("p@ss"));
    }
}
