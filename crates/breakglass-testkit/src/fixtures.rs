//! The incident and forge webhook fixtures, the documented payloads of each provider,
//! kept beside the parser that reads them
//! (`crates/breakglass-core/tests/fixtures/incidents/`) and read from any
//! crate's tests by name.

use std::path::{Path, PathBuf};

/// Where the incident fixtures are, whichever crate's tests ask.
pub fn incidents_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../breakglass-core/tests/fixtures/incidents")
}

/// The bytes of incident fixture `name`.
pub fn incident(name: &str) -> Vec<u8> {
    let path = incidents_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Incident fixture `name` as text.
pub fn incident_text(name: &str) -> String {
    String::from_utf8(incident(name)).unwrap_or_else(|e| panic!("fixture {name} is not UTF-8: {e}"))
}

/// The forge push-webhook fixtures (`crates/breakglass-core/tests/fixtures/forges/`).
pub fn forges_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../breakglass-core/tests/fixtures/forges")
}

/// Forge fixture `name` as text.
pub fn forge_text(name: &str) -> String {
    let path = forges_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}
