//! `login`, `logout`, `sessions` and `whoami`: signing the server's login
//! challenge with an SSH key (ssh-keygen -Y sign), and the session kept in
//! the credentials file.

use std::path::{Path, PathBuf};

use breakglass_client::Client;
use breakglass_core::api::{LoginRequest, SessionView};
use breakglass_core::sshsig::LOGIN_NAMESPACE;
use serde_json::json;

use super::{
    TOKEN_ENV, connect, credential_store, non_empty, now, opt_time, print_table, server_url, short_time, when,
};
use crate::cli::{LoginArgs, LogoutArgs, SessionsArgs, SessionsCommand, WhoamiArgs};
use crate::credentials::ServerCredentials;
use crate::error::{CliError, CliResult, bad_input, check_failed, internal, not_found};
use crate::print_json;

/// The keys `login` tries, in order, under `~/.ssh`, when `--key` is not given.
const DEFAULT_KEYS: [&str; 5] = ["id_ed25519", "id_ecdsa", "id_rsa", "id_ed25519_sk", "id_ecdsa_sk"];
/// A login challenge longer than this is refused rather than signed.
const MAX_CHALLENGE_BYTES: usize = 4096;

/// The key to sign with: `--key`, else the first default key that exists.
fn find_key(key: Option<PathBuf>) -> CliResult<PathBuf> {
    if let Some(key) = key {
        if !key.is_file() {
            return Err(not_found(format!("SSH key {} not found", key.display())));
        }
        return Ok(key);
    }
    let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) else {
        return Err(not_found("HOME is not set, so there is no ~/.ssh to look in (hint: pass --key)"));
    };
    let dir = PathBuf::from(home).join(".ssh");
    let candidates: Vec<PathBuf> = DEFAULT_KEYS.iter().map(|name| dir.join(name)).collect();
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    Err(not_found(format!(
        "no SSH key found; tried {} (hint: pass --key with a private key, or a .pub file whose key is in ssh-agent)",
        tried.join(", ")
    )))
}

/// Only breakglass login namespaces are signed: a server that asked for
/// `git` or `file` could otherwise collect a signature valid elsewhere.
fn check_namespace(namespace: &str) -> CliResult {
    if namespace == LOGIN_NAMESPACE || namespace.starts_with("breakglass-login@") {
        return Ok(());
    }
    Err(check_failed(format!(
        "the server asked for a signature in namespace {namespace:?}, which is not a breakglass login namespace \
         ({LOGIN_NAMESPACE:?}); refusing to sign (a signature in another namespace could be used elsewhere)"
    )))
}

/// Signs `challenge`, byte for byte, with `ssh-keygen -Y sign`; returns the armored signature.
fn sign_challenge(key: &Path, namespace: &str, challenge: &str) -> CliResult<String> {
    check_namespace(namespace)?;
    if challenge.is_empty() || challenge.len() > MAX_CHALLENGE_BYTES {
        return Err(internal(format!(
            "the server sent a login challenge of {} bytes; expected 1 to {MAX_CHALLENGE_BYTES}",
            challenge.len()
        )));
    }
    let dir = tempfile::tempdir().map_err(|e| internal(format!("cannot create a temporary directory: {e}")))?;
    let message = dir.path().join("challenge");
    std::fs::write(&message, challenge.as_bytes())
        .map_err(|e| internal(format!("cannot write the challenge to {}: {e}", message.display())))?;
    // ssh-keygen's own chatter goes to stderr, so that stdout stays ours (for --json).
    #[cfg(unix)]
    let stdout = {
        use std::os::fd::AsFd as _;
        std::io::stderr().as_fd().try_clone_to_owned().map_or_else(|_| std::process::Stdio::null(), Into::into)
    };
    #[cfg(not(unix))]
    let stdout = std::process::Stdio::null();
    let status = std::process::Command::new("ssh-keygen")
        .args(["-Y", "sign", "-n", namespace, "-f"])
        .arg(key)
        .arg(&message)
        .stdout(stdout)
        .status();
    let status = match status {
        Ok(status) => status,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(not_found("ssh-keygen was not found on PATH (hint: install the OpenSSH client)"));
        }
        Err(e) => return Err(internal(format!("cannot run ssh-keygen: {e}"))),
    };
    if !status.success() {
        return Err(check_failed(format!(
            "ssh-keygen -Y sign -n {namespace} -f {} failed ({status}); see its message above \
             (hint: a .pub key needs its private key loaded in ssh-agent: ssh-add)",
            key.display()
        )));
    }
    let sig_path = dir.path().join("challenge.sig");
    std::fs::read_to_string(&sig_path)
        .map_err(|e| internal(format!("ssh-keygen wrote no signature to {}: {e}", sig_path.display())))
}

/// Plain HTTP is fine on loopback; anywhere else the token crosses the network in clear.
fn warn_if_cleartext(server: &str) {
    let Some((scheme, host)) = scheme_and_host(server) else { return };
    if scheme == "http" && !matches!(host.as_str(), "127.0.0.1" | "localhost" | "[::1]") {
        eprintln!(
            "warning: {server} is plain HTTP: the session token will cross the network unencrypted; use https://"
        );
    }
}

/// The scheme and host of a normalised URL.
fn scheme_and_host(server: &str) -> Option<(String, String)> {
    let (scheme, rest) = server.split_once("://")?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host = if authority.starts_with('[') {
        authority.split_inclusive(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    Some((scheme.to_owned(), host.to_owned()))
}

pub async fn login(args: LoginArgs) -> CliResult {
    let principal = non_empty("--principal", &args.principal)?;
    let server = server_url(&args.client)?;
    let key = find_key(args.key)?;
    let store = credential_store()?;
    // Find an unusable credentials file before asking anyone to touch a key.
    store.load()?;
    warn_if_cleartext(&server);
    let client = Client::new(&server, None)?;
    let challenge = client.login_challenge(&principal).await?;
    let signature = sign_challenge(&key, &challenge.namespace, &challenge.challenge)?;
    let session = client.login(&LoginRequest { principal, challenge: challenge.challenge, signature }).await?;
    store.set(
        &server,
        ServerCredentials {
            token: session.token.clone(),
            principal: session.principal.clone(),
            expires_at: session.expires_at,
        },
    )?;
    if args.json {
        print_json(&json!({
            "server": server,
            "principal": session.principal,
            "expires_at": session.expires_at,
            "key_fingerprint": session.key_fingerprint,
            "credentials": store.path(),
        }));
    } else {
        println!("logged in to {server} as {} with key {}", session.principal, session.key_fingerprint);
        println!("session  until {}", when(session.expires_at, now()));
        println!("stored   {}", store.path().display());
    }
    if std::env::var(TOKEN_ENV).is_ok_and(|t| !t.trim().is_empty()) {
        eprintln!("note: {TOKEN_ENV} is set, and is used instead of this session until it is unset");
    }
    Ok(())
}

/// Ends the session on the server first (so a copy of the token elsewhere
/// is worthless too), then forgets it here. A server that cannot be reached
/// fails the command, unless `--local` says to forget it here only.
pub async fn logout(args: LogoutArgs) -> CliResult {
    let server = server_url(&args.client)?;
    let store = credential_store()?;
    let mut ended_on_server = false;
    if !args.local
        && let Some(entry) = store.get(&server)?
        && entry.expires_at > now()
    {
        let client = Client::new(&server, Some(entry.token))?;
        match client.logout().await {
            Ok(_) => ended_on_server = true,
            // Already ended (revoked, key removed): nothing left to end.
            Err(e) if e.status() == Some(401) => {}
            Err(e) => {
                let mut err = CliError::from(e);
                err.message.push_str(&format!(
                    "\nthe session was not ended on the server and is still stored here; to forget it here only: breakglass logout --local --server {server}"
                ));
                return Err(err);
            }
        }
    }
    let removed = store.remove(&server)?;
    if args.json {
        print_json(&json!({
            "server": server,
            "removed": removed,
            "ended_on_server": ended_on_server,
            "credentials": store.path(),
        }));
    } else if removed {
        let how = if ended_on_server { "ended the session on the server and removed" } else { "removed" };
        println!("logged out of {server}: {how} its session from {}", store.path().display());
    } else {
        println!("not logged in to {server}: {} holds no session for it", store.path().display());
    }
    if std::env::var(TOKEN_ENV).is_ok_and(|t| !t.trim().is_empty()) {
        eprintln!("note: {TOKEN_ENV} is set, and is still used");
    }
    Ok(())
}

fn session_row(s: &SessionView) -> Vec<String> {
    vec![
        format!("{}{}", s.id, if s.current { " *" } else { "" }),
        s.principal.clone(),
        s.state.clone(),
        short_time(s.created_at),
        opt_time(s.expires_at),
        opt_time(s.ended_at),
        s.key_fingerprint.clone().unwrap_or_else(|| "-".into()),
    ]
}

fn print_sessions(sessions: &[SessionView]) {
    print_table(
        &["ID", "PRINCIPAL", "STATE", "CREATED", "EXPIRES", "ENDED", "KEY"],
        &sessions.iter().map(session_row).collect::<Vec<_>>(),
    );
}

pub async fn sessions(args: SessionsArgs) -> CliResult {
    match args.command {
        None => {
            let client = connect(&args.client)?;
            let list = client.sessions(args.principal.as_deref(), args.all).await?;
            if args.json {
                print_json(&list);
            } else if list.sessions.is_empty() {
                println!("no {}sessions", if args.all { "" } else { "active " });
            } else {
                print_sessions(&list.sessions);
                if list.sessions.iter().any(|s| s.current) {
                    println!("(* is the session making this request)");
                }
            }
            Ok(())
        }
        Some(SessionsCommand::Revoke { id, principal, json, client }) => {
            let client = connect(&client)?;
            let ended = match (id, principal) {
                (Some(id), _) => client.revoke_session(&id).await?,
                (None, Some(p)) => client.revoke_sessions_of(&p).await?,
                (None, None) => return Err(bad_input("give a session id or --principal NAME")),
            };
            if json {
                print_json(&ended);
            } else if ended.ended.is_empty() {
                println!("no active sessions to end");
            } else {
                for s in &ended.ended {
                    println!("ended session {} of {}", s.id, s.principal);
                }
            }
            Ok(())
        }
    }
}

pub async fn whoami(args: WhoamiArgs) -> CliResult {
    let client = connect(&args.client)?;
    let who = client.whoami().await?;
    if args.json {
        print_json(&who);
    } else {
        let groups = if who.groups.is_empty() { "none".to_owned() } else { who.groups.join(", ") };
        println!("{} ({}, role {}) on {}", who.name, who.kind, who.role, client.base_url());
        println!("groups   {groups}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ExitCode;

    #[test]
    fn only_login_namespaces_are_signed() {
        assert!(check_namespace(LOGIN_NAMESPACE).is_ok());
        assert!(check_namespace("breakglass-login@example.com").is_ok());
        for bad in ["git", "file", "", "breakglass"] {
            assert_eq!(check_namespace(bad).unwrap_err().code, ExitCode::CheckFailed, "{bad}");
        }
    }

    #[test]
    fn cleartext_detection_reads_the_host() {
        assert_eq!(scheme_and_host("http://127.0.0.1:7468").unwrap(), ("http".into(), "127.0.0.1".into()));
        assert_eq!(scheme_and_host("http://[::1]:7468/x").unwrap(), ("http".into(), "[::1]".into()));
        assert_eq!(scheme_and_host("https://bg.example/p").unwrap(), ("https".into(), "bg.example".into()));
    }
}
