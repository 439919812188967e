//! The data directory: where the database, the keys, the configuration and
//! the log's file sink live, and how each is created and opened.
//!
//! Security: a local user on the server must not read a secret from here.
//! Private keys, the database and the configuration (which may hold webhook
//! and incident secrets) are created with mode 0600 from the start (no window
//! in which they are readable) inside a 0700 directory, never overwritten, and
//! never printed. Whatever holds a secret and is read back (a key, the
//! configuration when it holds secrets, a `*_file` secret) is refused when
//! group or others may access it, with the `chmod` command that fixes it.
//!
//! ```text
//! <data-dir>/
//!   breakglass.toml     configuration (see config.rs), 0600
//!   breakglass.db       SQLite database (WAL), 0600
//!   log-signing.key     the log's Ed25519 note signing key (PRIVATE+KEY+... form), 0600
//!   log.pub             the log's verifier key, for auditors
//!   audit-hmac.key      the key for digests of secret values in entries, 0600
//!   audit.jsonl         the JSON-lines copy of the log (configurable)
//!   grant-token.key     the Ed25519 seed that signs grant tokens (hex), 0600
//!   grant-token.jwks.json  its public key as a JWKS, to pin for offline verification
//!   login-hmac.key      the key that binds login challenges (hex), 0600
//!   policy/             the Cedar policies (*.cedar) and their test table
//!   principals.toml     who may break glass: names, groups, SSH keys, e-mails
//! ```
//!
//! Several servers over one PostgreSQL database must share the keys (copy
//! the key files): they sign one log and one kind of token.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use breakglass_core::entry::SecretDigester;
use breakglass_core::time::Clock;
use breakglass_store::LogStore;
use breakglass_store::ledger::{Ledger, LedgerConfig};
use breakglass_store::postgres::PostgresStore;
use breakglass_store::reader::LogReader;
use breakglass_store::sqlite::{OpenOptions, SqliteStore};
use breakglass_tlog::note::{NoteSigner, NoteVerifier};
use serde::Serialize;

use crate::config::{Config, validate_origin};
use crate::error::{CliResult, bad_input, internal, not_found};

pub const CONFIG_FILE: &str = "breakglass.toml";
pub const DB_FILE: &str = "breakglass.db";
pub const SIGNING_KEY_FILE: &str = "log-signing.key";
pub const VERIFIER_KEY_FILE: &str = "log.pub";
pub const HMAC_KEY_FILE: &str = "audit-hmac.key";
pub const GRANT_KEY_FILE: &str = "grant-token.key";
pub const GRANT_JWKS_FILE: &str = "grant-token.jwks.json";
pub const LOGIN_KEY_FILE: &str = "login-hmac.key";

/// The system clock: the one place breakglass reads the time.
pub use breakglass_server::SystemClock;

/// The default data directory: `$XDG_DATA_HOME/breakglass`, else `~/.local/share/breakglass`.
pub fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("breakglass");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/share/breakglass")
}

/// Where things are, as the command line and environment say.
#[derive(Clone, Debug)]
pub struct Location {
    pub root: PathBuf,
    pub config_file: Option<PathBuf>,
    /// `--database-url` / `BREAKGLASS_DATABASE_URL`, over the configuration file.
    pub database_url: Option<String>,
}

impl Location {
    pub fn at(root: &Path) -> Location {
        Location { root: root.to_owned(), config_file: None, database_url: None }
    }

    fn load_config(&self) -> CliResult<Config> {
        let path = self.config_file.clone().unwrap_or_else(|| self.root.join(CONFIG_FILE));
        let mut config = Config::load(&path, &self.root)?;
        if let Some(url) = &self.database_url {
            if !config.database.url_file.as_os_str().is_empty() {
                return Err(bad_input(
                    "--database-url (or BREAKGLASS_DATABASE_URL) and database.url_file are both set: set only one",
                ));
            }
            crate::config::validate_database_url(url)?;
            config.database.url = url.clone();
        }
        Ok(config)
    }
}

#[derive(Debug)]
pub struct DataDir {
    pub root: PathBuf,
    pub config: Config,
}

/// What `init` created and where.
#[derive(Debug, Serialize)]
pub struct InitReport {
    pub data_dir: PathBuf,
    pub created: Vec<PathBuf>,
    pub existing: Vec<PathBuf>,
    pub origin: String,
    pub verifier_key: String,
}

fn random_32() -> CliResult<[u8; 32]> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| internal(format!("cannot get random bytes from the OS: {e}")))?;
    Ok(b)
}

/// Creates `path` with `contents` and `mode` (set as the file is created, so
/// it is never more open than that), failing if it exists.
pub fn create_file(path: &Path, contents: &[u8], mode: u32) -> CliResult {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, mode);
    let _ = mode;
    let mut f = opts.open(path).map_err(|e| internal(format!("cannot create {}: {e}", path.display())))?;
    f.write_all(contents)
        .and_then(|_| f.sync_all())
        .map_err(|e| internal(format!("cannot write {}: {e}", path.display())))
}

impl DataDir {
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    pub fn sink_path(&self) -> PathBuf {
        self.root.join(&self.config.log.sink)
    }

    /// Opens an existing data directory; a missing one is an error, never created.
    pub fn open(loc: &Location) -> CliResult<DataDir> {
        let root = loc.root.as_path();
        if !root.is_dir() {
            return Err(not_found(format!(
                "data directory {} does not exist (hint: run 'breakglass init' or pass --data-dir)",
                root.display()
            )));
        }
        if !root.join(SIGNING_KEY_FILE).exists() {
            return Err(not_found(format!(
                "{} is not a breakglass data directory: {SIGNING_KEY_FILE} is missing (hint: run 'breakglass init --data-dir {}')",
                root.display(),
                root.display()
            )));
        }
        let config = loc.load_config()?;
        Ok(DataDir { root: root.to_owned(), config })
    }

    /// Creates the data directory, keys, configuration and database, keeping
    /// whatever already exists. Safe to run twice.
    pub async fn init(loc: &Location, origin: Option<String>) -> CliResult<(DataDir, InitReport)> {
        let root = loc.root.as_path();
        let configured = loc.load_config()?;
        if !configured.database.url.is_empty() {
            // Reach the database (and create its tables) before writing anything
            // here, so an unreachable database leaves no half-made data directory.
            PostgresStore::open(&configured.database.url).await?.close().await;
        }
        let mut created = Vec::new();
        let mut existing = Vec::new();
        if !root.exists() {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder.create(root).map_err(|e| internal(format!("cannot create {}: {e}", root.display())))?;
            created.push(root.to_owned());
        }
        let config_path = loc.config_file.clone().unwrap_or_else(|| root.join(CONFIG_FILE));
        let mut config = loc.load_config()?;
        if config_path.exists() {
            existing.push(config_path.clone());
            if let Some(o) = &origin
                && *o != config.log.origin
            {
                return Err(bad_input(format!(
                    "--origin {o:?} differs from the origin {:?} already configured in {}; a log's origin cannot change",
                    config.log.origin,
                    config_path.display()
                )));
            }
        } else {
            if let Some(o) = origin {
                validate_origin(&o)?;
                config.log.origin = o;
            }
            // No secret is copied into the file: a database URL (it may hold a
            // password) or a secret that came from the environment stays there,
            // one from a `*_file` stays in its file. The file is owner-only all
            // the same, since an operator may add secrets to it later.
            create_file(&config_path, config.without_secrets().to_toml().as_bytes(), 0o600)?;
            created.push(config_path);
        }
        let key_path = root.join(SIGNING_KEY_FILE);
        let signer = if key_path.exists() {
            existing.push(key_path.clone());
            read_signer(&key_path)?
        } else {
            let signer = NoteSigner::from_seed(&config.log.origin, &random_32()?)
                .map_err(|e| bad_input(format!("cannot make a signing key: {e}")))?;
            create_file(&key_path, format!("{}\n", signer.to_private_string()).as_bytes(), 0o600)?;
            created.push(key_path);
            signer
        };
        let pub_path = root.join(VERIFIER_KEY_FILE);
        if !pub_path.exists() {
            create_file(&pub_path, format!("{}\n", signer.verifier()).as_bytes(), 0o644)?;
            created.push(pub_path);
        }
        for name in [HMAC_KEY_FILE, GRANT_KEY_FILE, LOGIN_KEY_FILE] {
            let path = root.join(name);
            if path.exists() {
                existing.push(path);
            } else {
                create_file(&path, format!("{}\n", hex::encode(random_32()?)).as_bytes(), 0o600)?;
                created.push(path);
            }
        }
        let jwks_path = root.join(GRANT_JWKS_FILE);
        if !jwks_path.exists() {
            let signer = breakglass_core::token::TokenSigner::from_seed(&read_key(&root.join(GRANT_KEY_FILE))?);
            let jwks = breakglass_core::token::KeySet::new([signer.public_key().clone()])
                .map_err(|e| internal(format!("cannot make the JWKS: {e}")))?
                .to_jwks();
            create_file(&jwks_path, format!("{jwks}\n").as_bytes(), 0o644)?;
            created.push(jwks_path);
        }
        let policy_dir = root.join(&config.policy.dir);
        if policy_dir.exists() {
            existing.push(policy_dir);
        } else {
            // 0755 whatever the umask: the server refuses a policy directory
            // that others may write (they could give themselves rights).
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o755);
            builder
                .create(&policy_dir)
                .map_err(|e| internal(format!("cannot create {}: {e}", policy_dir.display())))?;
            create_file(
                &policy_dir.join("breakglass.cedar"),
                breakglass_core::policy::EXAMPLE_POLICY.as_bytes(),
                0o644,
            )?;
            create_file(
                &policy_dir.join("breakglass.test.toml"),
                breakglass_core::policy::EXAMPLE_TESTS.as_bytes(),
                0o644,
            )?;
            created.push(policy_dir);
        }
        let principals_path = root.join(&config.policy.principals);
        if principals_path.exists() {
            existing.push(principals_path);
        } else {
            create_file(&principals_path, breakglass_core::principals::EXAMPLE_PRINCIPALS.as_bytes(), 0o644)?;
            created.push(principals_path);
        }
        if config.database.url.is_empty() {
            let db_path = root.join(DB_FILE);
            if db_path.exists() {
                existing.push(db_path.clone());
            } else {
                // The database holds the log and, later, grants: owner-only like
                // the keys, from its first byte. SQLite takes an empty file as a
                // new database, and gives its -wal and -shm files the same mode.
                create_file(&db_path, b"", 0o600)?;
                created.push(db_path.clone());
            }
            let store = SqliteStore::open(&db_path, OpenOptions { create: true, read_only: false }).await?;
            store.close().await;
        }
        let dir = DataDir { root: root.to_owned(), config };
        if signer.name() != dir.config.log.origin {
            return Err(bad_input(format!(
                "the signing key in {} is named {:?} but the configured origin is {:?}",
                root.join(SIGNING_KEY_FILE).display(),
                signer.name(),
                dir.config.log.origin
            )));
        }
        let report = InitReport {
            data_dir: root.to_owned(),
            created,
            existing,
            origin: dir.config.log.origin.clone(),
            verifier_key: signer.verifier().to_string(),
        };
        Ok((dir, report))
    }

    pub fn signer(&self) -> CliResult<NoteSigner> {
        let signer = read_signer(&self.path(SIGNING_KEY_FILE))?;
        if signer.name() != self.config.log.origin {
            return Err(bad_input(format!(
                "the log signing key is named {:?} but the configured origin is {:?}",
                signer.name(),
                self.config.log.origin
            )));
        }
        Ok(signer)
    }

    pub fn digester(&self) -> CliResult<SecretDigester> {
        Ok(SecretDigester::new(read_key(&self.path(HMAC_KEY_FILE))?))
    }

    /// A 32-byte secret key of this data directory.
    pub fn key(&self, name: &str) -> CliResult<[u8; 32]> {
        read_key(&self.path(name))
    }

    /// A configured path: relative paths are under the data directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        self.root.join(p)
    }

    /// The log's store: PostgreSQL when a database URL is configured, else SQLite here.
    pub async fn store(&self, read_only: bool) -> CliResult<Arc<dyn LogStore>> {
        if !self.config.database.url.is_empty() {
            return Ok(Arc::new(PostgresStore::open(&self.config.database.url).await?));
        }
        let path = self.path(DB_FILE);
        Ok(Arc::new(SqliteStore::open(&path, OpenOptions { create: false, read_only }).await?))
    }

    /// A reader that trusts `key` if given, else the key of this data directory.
    pub async fn reader(&self, key: Option<&NoteVerifier>) -> CliResult<LogReader> {
        let verifier = match key {
            Some(k) => k.clone(),
            None => self.signer()?.verifier(),
        };
        let store = self.store(true).await?;
        Ok(LogReader::new(store, self.config.log.origin.clone(), verifier))
    }

    pub async fn ledger(&self, clock: Arc<dyn Clock>) -> CliResult<Ledger> {
        self.ledger_with(clock, true).await
    }

    pub async fn ledger_with(&self, clock: Arc<dyn Clock>, sink: bool) -> CliResult<Ledger> {
        let store = self.store(false).await?;
        let config = LedgerConfig {
            origin: self.config.log.origin.clone(),
            max_batch: self.config.log.max_batch,
            sink: sink.then(|| self.sink_path()),
            // Issue 14: verify the log at open from the checkpoint this data
            // directory verified last, and hold the sink to its crash window.
            verified: Some(self.path(breakglass_store::anchor::VERIFIED_CHECKPOINT_FILE)),
            sink_shared: self.config.database.url.is_empty(),
            ..LedgerConfig::new(self.config.log.origin.clone())
        };
        Ledger::open(store, self.signer()?, clock, config).await.map_err(|e| match e {
            e @ (breakglass_store::ledger::OpenError::Verify { .. }
            | breakglass_store::ledger::OpenError::Anchor(breakglass_store::anchor::AnchorError::Invalid { .. })) => {
                crate::error::check_failed(format!(
                "{e}\nnext: run 'breakglass audit verify --data-dir {}' and keep the database and the sink as evidence; restore the log from a good copy before starting again",
                self.root.display()
                ))
            }
            e => internal(format!("cannot open the audit log: {e}")),
        })
    }
}

/// `path` as a shell word: as it is when it needs no quoting, else in single quotes.
pub fn shell_word(path: &Path) -> String {
    let s = path.display().to_string();
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+,:@%=".contains(c)) {
        return s;
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Refuses a file holding `what` (a secret) that group or others may access,
/// naming the file, its mode and the command that fixes it. `meta` is the
/// open file's, so the file checked is the file read.
pub fn check_private(path: &Path, meta: &std::fs::Metadata, what: &str) -> CliResult {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(bad_input(format!(
                "{} holds {what} but group or others can access it (mode {mode:04o}); refusing to use it \
                 (fix: chmod 600 {}, and consider the secret exposed)",
                path.display(),
                shell_word(path)
            )));
        }
    }
    #[cfg(not(unix))]
    let _ = (path, meta, what);
    Ok(())
}

/// Opens `path`, refuses it if group or others may access it (it holds
/// `what`), and reads it.
pub fn read_private(path: &Path, what: &str) -> CliResult<String> {
    use std::io::Read as _;
    let mut file = std::fs::File::open(path).map_err(|e| not_found(format!("cannot read {}: {e}", path.display())))?;
    let meta = file.metadata().map_err(|e| internal(format!("cannot inspect {}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(bad_input(format!("{} (holding {what}) is not a regular file", path.display())));
    }
    check_private(path, &meta, what)?;
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(|e| bad_input(format!("cannot read {}: {e}", path.display())))?;
    Ok(text)
}

/// Refuses `path` if group or others may access it (it holds `what`).
pub fn check_private_file(path: &Path, what: &str) -> CliResult {
    let meta = std::fs::metadata(path).map_err(|e| not_found(format!("cannot read {}: {e}", path.display())))?;
    check_private(path, &meta, what)
}

/// Reads a hex 32-byte key file, refusing one that others may read.
fn read_key(path: &Path) -> CliResult<[u8; 32]> {
    let text = read_private(path, "a secret key")?;
    let bytes = hex::decode(text.trim()).ok().and_then(|b| <[u8; 32]>::try_from(b).ok());
    bytes.ok_or_else(|| bad_input(format!("{} does not hold a 32-byte hex key", path.display())))
}

fn read_signer(path: &Path) -> CliResult<NoteSigner> {
    let text = read_private(path, "the log's signing key")?;
    NoteSigner::parse(text.trim()).map_err(|e| bad_input(format!("{}: {e}", path.display())))
}

/// Reads a verifier key given inline or as a file holding one.
pub fn parse_verifier_key(arg: &str) -> CliResult<NoteVerifier> {
    let text = if Path::new(arg).is_file() {
        std::fs::read_to_string(arg).map_err(|e| bad_input(format!("cannot read key file {arg}: {e}")))?
    } else {
        arg.to_owned()
    };
    NoteVerifier::parse(text.trim()).map_err(|e| bad_input(format!("invalid --key {arg:?}: {e}")))
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn the_printed_chmod_runs_as_printed_whatever_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let odd = dir.path().join("with space 'and quote' $HOME");
        std::fs::create_dir(&odd).unwrap();
        let path = odd.join("audit-hmac.key");
        std::fs::write(&path, format!("{}\n", "ab".repeat(32))).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_key(&path).unwrap_err();
        assert_eq!(err.code, crate::error::ExitCode::BadInput);
        let fix = err.message.split("fix: ").nth(1).unwrap().split(", and").next().unwrap();
        assert_eq!(fix, format!("chmod 600 {}", shell_word(&path)));
        let status = std::process::Command::new("sh").arg("-c").arg(fix).status().unwrap();
        assert!(status.success(), "{fix}");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(read_key(&path).unwrap(), [0xab; 32]);
        assert_eq!(shell_word(Path::new("/var/lib/breakglass/x.key")), "/var/lib/breakglass/x.key");
    }
}
