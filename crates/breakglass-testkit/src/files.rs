//! Files and directories as breakglass insists on them: secrets readable by
//! their owner only (issue 14), data directories only their owner may enter.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Writes `contents` to a new file only its owner may read, as every file
/// holding a secret must be (a configuration with secrets, a `*_file`
/// secret, a hook's token file): 0600 from the moment it exists.
pub fn write_private(path: &Path, contents: &str) {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)
        .unwrap_or_else(|e| panic!("create {}: {e}", path.display()))
        .write_all(contents.as_bytes())
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A temp dir with an empty data directory `data` in it, 0700 as `init`
/// makes one; the temp dir (which removes both when dropped) and the path.
pub fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("create the data directory");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).expect("chmod 700 the data directory");
    }
    (dir, data)
}
