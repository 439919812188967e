//! The sandbox's people: SSH keys made by `ssh-keygen`, and a login with
//! one (the server's challenge signed by `ssh-keygen -Y sign`).

use std::path::Path;

use super::run_tool;
use crate::error::{CliResult, internal};

/// Makes an unencrypted ed25519 key at `path` with `ssh-keygen`; returns its
/// public key line.
pub(crate) fn new_ssh_key(path: &Path, comment: &str) -> CliResult<String> {
    run_tool(
        std::process::Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"]).arg(path),
        "ssh-keygen (is the OpenSSH client installed?)",
    )?;
    let public = std::fs::read_to_string(path.with_extension("pub"))
        .map_err(|e| internal(format!("cannot read the public key {}.pub: {e}", path.display())))?;
    Ok(public.trim().to_owned())
}

/// Logs in as `principal` with the SSH `key`: the challenge signed by `ssh-keygen -Y sign`.
pub(crate) async fn login(url: &str, principal: &str, key: &Path, scratch: &Path) -> CliResult<String> {
    use breakglass_core::api::LoginRequest;
    let client = breakglass_client::Client::new(url, None)?;
    let challenge =
        client.login_challenge(principal).await.map_err(|e| internal(format!("login challenge refused: {e}")))?;
    let message = scratch.join("challenge");
    std::fs::write(&message, challenge.challenge.as_bytes())
        .map_err(|e| internal(format!("cannot write {}: {e}", message.display())))?;
    run_tool(
        std::process::Command::new("ssh-keygen")
            .args(["-Y", "sign", "-n", &challenge.namespace, "-f"])
            .arg(key)
            .arg(&message),
        "ssh-keygen -Y sign",
    )?;
    let signature = std::fs::read_to_string(scratch.join("challenge.sig"))
        .map_err(|e| internal(format!("ssh-keygen wrote no signature: {e}")))?;
    let session = client
        .login(&LoginRequest { principal: principal.to_owned(), challenge: challenge.challenge, signature })
        .await
        .map_err(|e| internal(format!("login refused: {e}")))?;
    Ok(session.token)
}
