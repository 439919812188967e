//! A sandbox of breakglass on this machine, shared by `drill` (the
//! rehearsal) and `bench` (the benchmarks): a scratch `breakglass serve`
//! process, SSH keys and a login with them, and the commands they run
//! (git, the hooks, `breakglass` itself) with an environment of their own.

mod keys;
mod server;

pub(crate) use keys::{login, new_ssh_key};
pub(crate) use server::{ServerProcess, start_server};

use crate::error::{CliResult, internal};

/// Runs a command to completion; its output is kept for the error message.
pub(crate) fn run_tool(cmd: &mut std::process::Command, what: &str) -> CliResult {
    let out =
        cmd.stdin(std::process::Stdio::null()).output().map_err(|e| internal(format!("cannot run {what}: {e}")))?;
    if !out.status.success() {
        return Err(internal(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// `git` with the environment of the sandbox's pushes: see [`clean_cmd`].
pub(crate) fn git_cmd() -> std::process::Command {
    clean_cmd("git")
}

/// `program` with no `BREAKGLASS_*` variable of the calling shell (except
/// `BREAKGLASS_LOG`), none of the identity variables the hooks read, and no
/// prompts: the hooks see only what the sandbox sets.
pub(crate) fn clean_cmd(program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
    let mut cmd = std::process::Command::new(program);
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(|n| n.starts_with("BREAKGLASS_") && n != "BREAKGLASS_LOG") {
            cmd.env_remove(name);
        }
    }
    for v in crate::git::hook::default_identity() {
        cmd.env_remove(v);
    }
    cmd.env("GIT_TERMINAL_PROMPT", "0").stdin(std::process::Stdio::null());
    cmd
}
