//! A scratch PostgreSQL database per test, on the server that
//! `BREAKGLASS_TEST_PG_URL` names. Without that variable there is none and
//! the test skips its PostgreSQL part, unless `BREAKGLASS_TEST_REQUIRE_PG`
//! is set (as scripts/test sets it): then a missing server is a failure.

use std::sync::atomic::{AtomicU64, Ordering};

static DB_COUNTER: AtomicU64 = AtomicU64::new(0);

/// One fresh database: the server's URL (to drop it again), its name, and
/// the URL that opens it.
#[derive(Debug, Clone)]
pub struct PgDatabase {
    pub admin_url: String,
    pub name: String,
    pub url: String,
}

/// `BREAKGLASS_TEST_PG_URL`, or `None` (a failure under `BREAKGLASS_TEST_REQUIRE_PG`).
pub fn admin_url() -> Option<String> {
    match std::env::var("BREAKGLASS_TEST_PG_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            assert!(
                std::env::var_os("BREAKGLASS_TEST_REQUIRE_PG").is_none(),
                "BREAKGLASS_TEST_REQUIRE_PG is set but BREAKGLASS_TEST_PG_URL is not"
            );
            None
        }
    }
}

/// `postgres://user@host:port/db?x=y` with the database replaced by `db`.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_end..].find('/') {
        Some(slash) => &base[..authority_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

impl PgDatabase {
    /// A new database named `<prefix>_<process id>_<n>`, or `None` without
    /// `BREAKGLASS_TEST_PG_URL` (see the module's doc).
    pub async fn create(prefix: &str) -> Option<PgDatabase> {
        let admin_url = admin_url()?;
        let name = format!("{prefix}_{}_{}", std::process::id(), DB_COUNTER.fetch_add(1, Ordering::Relaxed));
        let admin = sqlx::PgPool::connect(&admin_url).await.expect("connect to BREAKGLASS_TEST_PG_URL");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&admin)
            .await
            .expect("create test database");
        admin.close().await;
        let url = with_database(&admin_url, &name);
        Some(PgDatabase { admin_url, name, url })
    }

    /// [`PgDatabase::create`] for a test without a runtime of its own.
    pub fn create_blocking(prefix: &str) -> Option<PgDatabase> {
        block_on(PgDatabase::create(prefix))
    }

    /// Drops the database (connections to it are ended); a failure fails the test.
    pub async fn drop_db(&self) {
        let admin = sqlx::PgPool::connect(&self.admin_url).await.expect("admin connection");
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&admin).await.expect("drop test database");
        admin.close().await;
    }

    /// Drops the database if it can, from a test without a runtime (a
    /// `Drop`, where a panic would hide the test's own failure).
    pub fn drop_quietly(&self) {
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        let admin_url = self.admin_url.clone();
        block_on(async move {
            if let Ok(pool) = sqlx::PgPool::connect(&admin_url).await {
                let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&pool).await;
                pool.close().await;
            }
        });
    }
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime").block_on(f)
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn test_database_urls_are_rewritten_correctly() {
        assert_eq!(with_database("postgres://u@h:5/postgres", "x"), "postgres://u@h:5/x");
        assert_eq!(with_database("postgres://u@h:5", "x"), "postgres://u@h:5/x");
        assert_eq!(with_database("postgres://u@h/db?sslmode=disable", "x"), "postgres://u@h/x?sslmode=disable");
    }
}
