//! SSH keys made by the real `ssh-keygen`, and signatures made by
//! `ssh-keygen -Y sign` (what `breakglass login` runs), so tests check
//! breakglass against OpenSSH rather than against itself.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A private key file and its public key line (trimmed, as a principals
/// file holds it).
#[derive(Debug, Clone)]
pub struct SshKey {
    pub private: PathBuf,
    pub line: String,
}

impl SshKey {
    /// The private key's path and the public line, for destructuring.
    pub fn into_parts(self) -> (PathBuf, String) {
        (self.private, self.line)
    }
}

/// Runs `ssh-keygen ARGS` with `stdin` (a file) or nothing on its standard
/// input; says how to install it when it is missing.
pub fn ssh_keygen(args: &[&str], stdin: Option<&Path>) -> Output {
    let stdin = match stdin {
        Some(path) => Stdio::from(std::fs::File::open(path).expect("open ssh-keygen's input")),
        None => Stdio::null(),
    };
    match Command::new("ssh-keygen").args(args).stdin(stdin).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "ssh-keygen is not on PATH: install openssh-client (e.g. 'apt-get install openssh-client') to run the SSH tests"
        ),
        Err(e) => panic!("cannot run ssh-keygen: {e}"),
    }
}

/// Insists that `out` succeeded; `what` names it in the failure.
pub fn check(out: Output, what: &str) -> Output {
    assert!(out.status.success(), "{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// An unencrypted key at `path` with `comment`, of the type `args` ask for
/// (e.g. `["-t", "rsa", "-b", "2048"]`).
pub fn keygen_at(path: &Path, comment: &str, args: &[&str]) -> SshKey {
    let path_s = path.to_str().expect("a UTF-8 key path");
    let mut all = vec!["-q", "-N", "", "-C", comment, "-f", path_s];
    all.extend_from_slice(args);
    check(ssh_keygen(&all, None), &format!("ssh-keygen {args:?}"));
    let line = std::fs::read_to_string(path.with_extension("pub")).expect("read the public key");
    SshKey { private: path.to_owned(), line: line.trim().to_owned() }
}

/// An ed25519 key `dir/name`, with `name` as its comment.
pub fn keygen(dir: &Path, name: &str) -> SshKey {
    keygen_at(&dir.join(name), name, &["-t", "ed25519"])
}

/// `ssh-keygen -Y sign -n NAMESPACE -f KEY` over exactly `message`: the
/// armored signature.
pub fn sign(private: &Path, namespace: &str, message: &[u8]) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("challenge");
    std::fs::write(&file, message).expect("write the message");
    let (key, file_s) = (private.to_str().expect("a UTF-8 key path"), file.to_str().expect("a UTF-8 path"));
    check(ssh_keygen(&["-q", "-Y", "sign", "-n", namespace, "-f", key, file_s], None), "ssh-keygen -Y sign");
    std::fs::read_to_string(file.with_extension("sig")).expect("ssh-keygen wrote the signature")
}

/// The SSH wire encoding of `parts` as consecutive `string`s (RFC 4251: a
/// big-endian u32 length, then the bytes), for building keys and SSHSIG
/// blobs by hand, independently of the code under test.
pub fn wire_strings(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(&u32::try_from(p.len()).expect("a part under 4 GiB").to_be_bytes());
        out.extend_from_slice(p);
    }
    out
}
