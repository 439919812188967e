//! Configuration: one TOML file (`breakglass.toml` in the data directory, or
//! `--config FILE`), every key overridable by a `BREAKGLASS_*` environment
//! variable. Only this crate reads files named by the user and the environment.
//!
//! ```toml
//! [database]
//! # PostgreSQL for several servers over one database, e.g.
//! # "postgres://breakglass@db.internal/breakglass". Empty: SQLite in the data directory.
//! url = ""
//!
//! [log]
//! # The checkpoint origin line and the name of the log's signing key.
//! origin = "breakglass.local/ci-runner-1"
//! # The JSON-lines copy of the log; relative paths are under the data directory.
//! sink = "audit.jsonl"
//! # The most entries committed in one transaction (group commit).
//! max_batch = 256
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{CliResult, bad_input};

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub database: DatabaseConfig,
    pub log: LogConfig,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// A `postgres://` URL, or empty for SQLite in the data directory.
    pub url: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub origin: String,
    pub sink: PathBuf,
    pub max_batch: usize,
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig { origin: default_origin(), sink: PathBuf::from("audit.jsonl"), max_batch: 256 }
    }
}

/// `breakglass.local/<hostname>`: unique enough for one deployment, and easy to override.
pub fn default_origin() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'))
        .unwrap_or_else(|| "localhost".to_owned());
    format!("breakglass.local/{host}")
}

pub fn validate_origin(origin: &str) -> CliResult {
    if origin.is_empty() || origin.contains('+') || origin.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad_input(format!("invalid log origin {origin:?}: must be non-empty with no spaces or '+'")));
    }
    Ok(())
}

pub fn validate_database_url(url: &str) -> CliResult {
    if url.is_empty() || url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(());
    }
    let shown = breakglass_store::postgres::redact_url(url);
    Err(bad_input(format!(
        "invalid database URL {shown:?}: expected postgres://… (or nothing, for SQLite in the data directory)"
    )))
}

impl Config {
    /// Reads the file if it exists (a missing file means defaults), then applies the environment.
    pub fn load(path: &Path) -> CliResult<Config> {
        let mut config = match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text)
                .map_err(|e| bad_input(format!("invalid configuration file {}: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Config::default(),
            Err(e) => return Err(bad_input(format!("cannot read configuration file {}: {e}", path.display()))),
        };
        config.apply_env(|k| std::env::var(k).ok())?;
        validate_origin(&config.log.origin)?;
        validate_database_url(&config.database.url)?;
        if config.log.max_batch == 0 {
            return Err(bad_input("invalid log.max_batch 0: must be at least 1"));
        }
        Ok(config)
    }

    /// `BREAKGLASS_DATABASE_URL`, `BREAKGLASS_LOG_ORIGIN`, `BREAKGLASS_LOG_SINK`, `BREAKGLASS_LOG_MAX_BATCH`.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> CliResult {
        if let Some(v) = get("BREAKGLASS_DATABASE_URL") {
            self.database.url = v;
        }
        if let Some(v) = get("BREAKGLASS_LOG_ORIGIN") {
            self.log.origin = v;
        }
        if let Some(v) = get("BREAKGLASS_LOG_SINK") {
            self.log.sink = PathBuf::from(v);
        }
        if let Some(v) = get("BREAKGLASS_LOG_MAX_BATCH") {
            self.log.max_batch = v.parse().map_err(|_| {
                bad_input(format!("invalid BREAKGLASS_LOG_MAX_BATCH {v:?}: expected a positive integer"))
            })?;
        }
        Ok(())
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_overrides_file() {
        let mut c: Config = toml::from_str("[log]\norigin = \"a.example/log\"\n").unwrap();
        assert_eq!(c.log.max_batch, 256);
        c.apply_env(|k| (k == "BREAKGLASS_LOG_ORIGIN").then(|| "b.example/log".to_owned())).unwrap();
        assert_eq!(c.log.origin, "b.example/log");
        assert!(c.apply_env(|k| (k == "BREAKGLASS_LOG_MAX_BATCH").then(|| "lots".to_owned())).is_err());
        assert!(toml::from_str::<Config>("[log]\norigin_typo = 1\n").is_err());
        assert!(validate_origin("has space").is_err());
    }
}
