//! Running the real binary against a temporary data directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use breakglass_testkit::pg::PgDatabase;

pub const BIN: &str = env!("CARGO_BIN_EXE_breakglass");

/// Entries `init` writes to the audit log before any test appends: the
/// bootstrap admin API token's creation (`api_token.created`, index 0). Entries
/// a test appends start at this index, and every size includes them.
pub const INIT_ENTRIES: u64 = 1;

/// A scratch data directory, initialised with a fixed origin; the log is
/// SQLite in the directory, or a fresh PostgreSQL database.
pub struct Scratch {
    pub dir: tempfile::TempDir,
    /// The database when the log is on PostgreSQL.
    pub pg: Option<PgDatabase>,
}

impl Scratch {
    pub fn new() -> Scratch {
        let s = Scratch { dir: tempfile::tempdir().unwrap(), pg: None };
        s.ok(&["init", "--origin", "test.breakglass.local/log"]);
        s
    }

    /// A scratch whose log is a new database on `BREAKGLASS_TEST_PG_URL`;
    /// `None` when no PostgreSQL is configured (a failure instead when
    /// `BREAKGLASS_TEST_REQUIRE_PG` is set, as the README's test command sets it).
    pub fn postgres() -> Option<Scratch> {
        let db = PgDatabase::create_blocking("bg_cli")?;
        let s = Scratch { dir: tempfile::tempdir().unwrap(), pg: Some(db) };
        s.ok(&["init", "--origin", "test.breakglass.local/log"]);
        Some(s)
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args).arg("--data-dir").arg(self.data()).env_remove("BREAKGLASS_DATA_DIR");
        c.env_remove("BREAKGLASS_DATABASE_URL");
        if let Some(db) = &self.pg {
            c.arg("--database-url").arg(&db.url);
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs and insists on success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "breakglass {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and insists on the given exit code; returns stderr.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "breakglass {args:?}: stderr {stderr}");
        stderr
    }

    /// Appends `count` entries per writer with `writers` writers.
    pub fn append(&self, count: u64, writers: u64) {
        self.ok(&["debug", "append", "--count", &count.to_string(), "--writers", &writers.to_string()]);
    }

    pub fn db(&self) -> PathBuf {
        self.data().join("breakglass.db")
    }

    /// Runs SQL against the database directly, as an attacker with file access would.
    pub fn sql(&self, sql: &str) {
        let db = self.db();
        let sql = sql.to_owned();
        run_async(async move {
            let store = breakglass_store::sqlite::SqliteStore::open(&db, Default::default()).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(store.pool()).await.unwrap();
            store.close().await;
        });
    }

    /// All entries' bytes, straight from the database.
    pub fn entries(&self) -> Vec<Vec<u8>> {
        let db = self.db();
        let pg = self.pg.as_ref().map(|db| db.url.clone());
        run_async(async move {
            use breakglass_store::LogStore as _;
            let rows = match pg {
                Some(url) => {
                    let store = breakglass_store::postgres::PostgresStore::open(&url).await.unwrap();
                    let rows = store.entries(0, u64::MAX).await.unwrap();
                    store.close().await;
                    rows
                }
                None => {
                    let store = breakglass_store::sqlite::SqliteStore::open(&db, Default::default()).await.unwrap();
                    let rows = store.entries(0, u64::MAX).await.unwrap();
                    store.close().await;
                    rows
                }
            };
            rows.into_iter()
                .enumerate()
                .map(|(k, r)| {
                    assert_eq!(r.index, k as u64);
                    r.data
                })
                .collect()
        })
    }

    pub fn key(&self) -> String {
        self.ok(&["audit", "key"]).trim().to_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(db) = self.pg.take() {
            db.drop_quietly();
        }
    }
}

pub fn run_async<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

/// Runs the independent Python verifier (tests/independent_verifier.py).
pub fn independent(args: &[&Path]) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/independent_verifier.py");
    Command::new("python3").arg(script).args(args).output().expect(
        "python3 with the cryptography package is needed for the independent verifier (the README's test command installs it)",
    )
}
