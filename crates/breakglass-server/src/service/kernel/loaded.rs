//! The policy and the principals in force: read from their files, checked
//! all or nothing (including that nobody but their owner may write them),
//! and swapped as a whole on reload. The server reads these files itself,
//! from the paths its configuration names.

use std::path::Path;

use breakglass_core::policy::Policy;
use breakglass_core::principals::Principals;

use super::config::ServiceConfig;

/// The policy and principals in force, swapped as a whole on reload.
pub struct Loaded {
    pub policy: Policy,
    pub principals: Principals,
    pub files: Vec<(String, String)>,
    /// (principal, SHA-256 fingerprint) of every SSH key in the principals
    /// file: a session lasts only while the key that made it is here.
    pub session_keys: std::collections::HashSet<(String, String)>,
}

impl Loaded {
    /// Whether the key that made a session is still its principal's.
    pub fn holds_key(&self, principal: &str, fingerprint: Option<&str>) -> bool {
        fingerprint.is_some_and(|fp| self.session_keys.contains(&(principal.to_owned(), fp.to_owned())))
    }
}

/// Every `*.cedar` file in `dir`, sorted by name, as (path, text): what
/// `Policy::load` takes, for the server and for `breakglass policy`.
pub fn read_policy_dir(dir: &Path) -> std::result::Result<Vec<(String, String)>, String> {
    let rd = std::fs::read_dir(dir).map_err(|e| format!("cannot read the policy directory {}: {e}", dir.display()))?;
    let mut paths = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| format!("cannot read the policy directory {}: {e}", dir.display()))?;
        let path = ent.path();
        if path.extension().is_some_and(|x| x == "cedar") && path.is_file() {
            paths.push(path);
        }
    }
    if paths.is_empty() {
        return Err(format!("no *.cedar files in {}", dir.display()));
    }
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).map_err(|e| format!("cannot read policy {}: {e}", p.display()))?;
            Ok((p.display().to_string(), text))
        })
        .collect()
}

/// A path as a shell word, so that a printed fix runs as printed.
fn shell_word(path: &Path) -> String {
    let s = path.display().to_string();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-+,:@".contains(&b)) {
        return s;
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Refuses a file or directory that decides who may break glass when
/// someone other than its owner may write it: a local user who can edit the
/// principals file or a policy gives themselves break-glass rights.
#[cfg(unix)]
fn check_not_writable_by_others(what: &str, path: &Path) -> std::result::Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {what} {}: {e}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o022 != 0 {
        return Err(format!(
            "{what} {} is writable by group or others (mode {mode:04o}): whoever can write it can give themselves break-glass rights (fix: chmod go-w {})",
            path.display(),
            shell_word(path)
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_not_writable_by_others(_what: &str, _path: &Path) -> std::result::Result<(), String> {
    Ok(())
}

/// Loads the policy directory and the principals file, all or nothing.
pub fn load(config: &ServiceConfig) -> std::result::Result<Loaded, Vec<String>> {
    let mut loose = Vec::new();
    for (what, path) in [("the policy directory", &config.policy_dir), ("the principals file", &config.principals_file)]
    {
        if let Err(e) = check_not_writable_by_others(what, path) {
            loose.push(e);
        }
    }
    let sources = read_policy_dir(&config.policy_dir).map_err(|e| vec![e])?;
    for (name, _) in &sources {
        if let Err(e) = check_not_writable_by_others("the policy file", Path::new(name)) {
            loose.push(e);
        }
    }
    if !loose.is_empty() {
        return Err(loose);
    }
    let policy = Policy::load(&sources).map_err(|e| e.problems.iter().map(|p| p.to_string()).collect::<Vec<_>>())?;
    let source = config.principals_file.display().to_string();
    let text = std::fs::read_to_string(&config.principals_file)
        .map_err(|e| vec![format!("cannot read the principals file {source}: {e}")])?;
    let principals = Principals::parse(&text, &source).map_err(|e| vec![e.to_string()])?;
    let mut files: Vec<(String, String)> =
        sources.iter().map(|(name, text)| (name.clone(), sha256_hex(text.as_bytes()))).collect();
    files.push((source, sha256_hex(text.as_bytes())));
    let session_keys = principals
        .iter()
        .flat_map(|p| p.ssh_keys.iter().map(|k| (p.name.clone(), k.fingerprint(ssh_key::HashAlg::Sha256).to_string())))
        .collect();
    Ok(Loaded { policy, principals, files, session_keys })
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(data))
}
