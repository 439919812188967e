//! The credential store: the session tokens `breakglass login` obtained, one
//! per server URL, in a TOML file only the user can read.
//!
//! Security: the file holds bearer tokens, and other local users must not
//! read it. It is created with mode 0600 in a directory created with mode
//! 0700, written atomically (a temporary file in the same directory, synced,
//! then renamed over the old one, so a crash leaves the old file or the new
//! one, never half of either), and refused when group or others have any
//! access to it, as ssh refuses a private key anyone else can read. Tokens
//! never appear in `Debug` output or error messages.
//!
//! ```toml
//! [servers."http://127.0.0.1:7468"]
//! token = "bgs_…"
//! principal = "alice"
//! expires_at = 1795000000000
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use breakglass_core::time::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::{CliResult, bad_input, internal, not_found};

/// The file, by default: `$XDG_CONFIG_HOME/breakglass/credentials.toml`, else
/// `~/.config/breakglass/credentials.toml`; `BREAKGLASS_CREDENTIALS` overrides it.
pub fn default_path() -> CliResult<PathBuf> {
    if let Some(path) = std::env::var_os("BREAKGLASS_CREDENTIALS").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    // The XDG base directory specification says relative paths are to be ignored.
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from).filter(|p| p.is_absolute()) {
        return Ok(dir.join("breakglass").join("credentials.toml"));
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".config").join("breakglass").join("credentials.toml")),
        None => Err(not_found(
            "cannot find the credentials file: neither HOME nor XDG_CONFIG_HOME is set (hint: set BREAKGLASS_CREDENTIALS)",
        )),
    }
}

/// One server's session.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerCredentials {
    pub token: String,
    pub principal: String,
    pub expires_at: Timestamp,
}

impl fmt::Debug for ServerCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerCredentials")
            .field("token", &"<redacted>")
            .field("principal", &self.principal)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The whole file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// By normalised server URL (`breakglass_client::normalize_server_url`).
    #[serde(default)]
    pub servers: BTreeMap<String, ServerCredentials>,
}

/// The credentials file at one path.
#[derive(Clone, Debug)]
pub struct CredentialStore {
    path: PathBuf,
}

impl CredentialStore {
    pub fn at(path: impl Into<PathBuf>) -> CredentialStore {
        CredentialStore { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file; a missing file is an empty store. Refuses a file that
    /// group or others may access (exit 2), naming the path and its mode.
    pub fn load(&self) -> CliResult<Credentials> {
        let mut file = match std::fs::File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Credentials::default()),
            Err(e) => return Err(bad_input(format!("cannot open the credentials file {}: {e}", self.path.display()))),
        };
        // Checked on the open file, so the file checked is the file read.
        let meta = file
            .metadata()
            .map_err(|e| internal(format!("cannot inspect the credentials file {}: {e}", self.path.display())))?;
        if !meta.is_file() {
            return Err(bad_input(format!("the credentials file {} is not a regular file", self.path.display())));
        }
        check_private(&self.path, &meta)?;
        let mut text = String::new();
        file.read_to_string(&mut text)
            .map_err(|e| bad_input(format!("cannot read the credentials file {}: {e}", self.path.display())))?;
        toml::from_str(&text).map_err(|e| {
            bad_input(format!(
                "the credentials file {} is not valid: {} (hint: fix or delete it and run `breakglass login` again)",
                self.path.display(),
                e.message()
            ))
        })
    }

    /// The session stored for `server` (a normalised URL), if any.
    pub fn get(&self, server: &str) -> CliResult<Option<ServerCredentials>> {
        Ok(self.load()?.servers.remove(server))
    }

    /// Stores (or replaces) the session for `server`.
    pub fn set(&self, server: &str, entry: ServerCredentials) -> CliResult {
        let mut creds = self.load()?;
        creds.servers.insert(server.to_owned(), entry);
        self.write(&creds)
    }

    /// Removes the session for `server`; whether there was one. The file is
    /// rewritten (still 0600) even when it becomes empty.
    pub fn remove(&self, server: &str) -> CliResult<bool> {
        let mut creds = self.load()?;
        if creds.servers.remove(server).is_none() {
            return Ok(false);
        }
        self.write(&creds)?;
        Ok(true)
    }

    /// Writes the whole file atomically: a 0600 temporary file in the same
    /// directory, synced, renamed over the old file, and the directory synced.
    pub fn write(&self, creds: &Credentials) -> CliResult {
        let text = toml::to_string(creds).map_err(|e| internal(format!("cannot encode the credentials: {e}")))?;
        let dir = match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        create_private_dir(&dir)?;
        let fail = |what: &str, e: std::io::Error| {
            internal(format!("cannot write the credentials file {}: {what}: {e}", self.path.display()))
        };
        // tempfile creates the file with mode 0600 on Unix; set it again in case of an odd umask or platform.
        let mut tmp = tempfile::Builder::new()
            .prefix(".credentials.")
            .suffix(".tmp")
            .tempfile_in(&dir)
            .map_err(|e| fail("creating a temporary file", e))?;
        set_mode(tmp.path(), 0o600).map_err(|e| fail("setting its mode", e))?;
        tmp.write_all(text.as_bytes()).map_err(|e| fail("writing", e))?;
        tmp.as_file().sync_all().map_err(|e| fail("syncing", e))?;
        tmp.persist(&self.path).map_err(|e| fail("renaming the temporary file", e.error))?;
        // Make the rename itself durable. Best effort: not every platform can sync a directory.
        if let Ok(dir) = std::fs::File::open(&dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

/// Creates `dir` (and its parents) with mode 0700 if it does not exist.
fn create_private_dir(dir: &Path) -> CliResult {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| internal(format!("cannot create the directory {}: {e}", dir.display())))
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn check_private(path: &Path, meta: &std::fs::Metadata) -> CliResult {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(bad_input(format!(
            "refusing to read the credentials file {}: its mode is {mode:04o}, so group or others can access the \
             tokens in it (fix: chmod 600 {}, and consider the tokens in it exposed)",
            path.display(),
            crate::datadir::shell_word(path)
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path, _meta: &std::fs::Metadata) -> CliResult {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

    use super::*;
    use crate::error::ExitCode;

    const SERVER: &str = "http://127.0.0.1:7468";

    fn entry(token: &str) -> ServerCredentials {
        ServerCredentials { token: token.into(), principal: "alice".into(), expires_at: Timestamp(1_795_000_000_000) }
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let store = CredentialStore::at(dir.path().join("nope.toml"));
        assert_eq!(store.load().unwrap(), Credentials::default());
        assert_eq!(store.get(SERVER).unwrap(), None);
        assert!(!store.remove(SERVER).unwrap());
        assert!(!store.path().exists(), "removing from a missing file creates nothing");
    }

    #[test]
    fn written_private_in_a_private_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config").join("breakglass").join("credentials.toml");
        let store = CredentialStore::at(&path);
        store.set(SERVER, entry("bgs_one")).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(store.get(SERVER).unwrap(), Some(entry("bgs_one")));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("[servers.\"http://127.0.0.1:7468\"]"), "{text}");
        assert!(text.contains("token = \"bgs_one\""), "{text}");
        assert!(text.contains("expires_at = 1795000000000"), "{text}");
    }

    #[test]
    fn refuses_a_file_group_or_others_can_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.toml");
        let store = CredentialStore::at(&path);
        store.set(SERVER, entry("bgs_one")).unwrap();
        for bad in [0o640, 0o604, 0o660, 0o644] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(bad)).unwrap();
            let err = store.load().unwrap_err();
            assert_eq!(err.code, ExitCode::BadInput);
            assert!(err.message.contains(&path.display().to_string()), "{}", err.message);
            assert!(err.message.contains(&format!("{bad:04o}")), "{}", err.message);
            assert!(!err.message.contains("bgs_one"), "{}", err.message);
            // Writing goes through a read, so it is refused too, and the file is left alone.
            assert_eq!(store.set(SERVER, entry("bgs_two")).unwrap_err().code, ExitCode::BadInput);
            assert_eq!(store.remove(SERVER).unwrap_err().code, ExitCode::BadInput);
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(store.get(SERVER).unwrap(), Some(entry("bgs_one")));
    }

    #[test]
    fn writes_replace_the_file_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.toml");
        let store = CredentialStore::at(&path);
        store.set(SERVER, entry("bgs_one")).unwrap();
        let before = std::fs::metadata(&path).unwrap().ino();
        store.set("https://other.example", entry("bgs_two")).unwrap();
        // A new inode: the file was renamed into place, not rewritten in place.
        assert_ne!(std::fs::metadata(&path).unwrap().ino(), before);
        assert_eq!(mode(&path), 0o600);
        // No temporary files are left behind.
        let names: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(names, ["credentials.toml"]);
        let creds = store.load().unwrap();
        assert_eq!(creds.servers.len(), 2);
        assert_eq!(creds.servers["https://other.example"], entry("bgs_two"));
    }

    #[test]
    fn logout_removes_only_that_server() {
        let dir = tempfile::tempdir().unwrap();
        let store = CredentialStore::at(dir.path().join("credentials.toml"));
        store.set(SERVER, entry("bgs_one")).unwrap();
        store.set("https://other.example", entry("bgs_two")).unwrap();
        assert!(store.remove(SERVER).unwrap());
        assert!(!store.remove(SERVER).unwrap());
        assert_eq!(store.get(SERVER).unwrap(), None);
        assert_eq!(store.get("https://other.example").unwrap(), Some(entry("bgs_two")));
        assert_eq!(mode(store.path()), 0o600);
        assert!(!std::fs::read_to_string(store.path()).unwrap().contains("bgs_one"));
    }

    #[test]
    fn a_malformed_file_is_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.toml");
        std::fs::write(&path, "servers = 3\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = CredentialStore::at(&path).load().unwrap_err();
        assert_eq!(err.code, ExitCode::BadInput);
        assert!(err.message.contains("is not valid"), "{}", err.message);
    }

    #[test]
    fn debug_hides_the_token() {
        let shown = format!("{:?}", entry("bgs_secret"));
        assert!(!shown.contains("bgs_secret"), "{shown}");
    }
}
