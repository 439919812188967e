//! The client commands: `login`, `logout`, `whoami`, `request`, `approve`,
//! `deny`, `revoke`, `extend`, `grants`, `show`, `token …`, `grant verify`
//! and `policy reload`. Each talks to a breakglass server through
//! `breakglass-client` and maps the answer to output and an exit code.
//!
//! This is a security-sensitive part of the code: it handles session, API
//! and grant tokens. Tokens are read from `BREAKGLASS_TOKEN` or the
//! credentials file, never from argv (other users can read the process
//! list); they are printed only where the user asked for exactly that
//! (`token ID`, `token create`), and never in an error.
//!
//! Exit codes (see `cli::CLIENT_HELP`): HTTP 400, 413 and 422 are bad input
//! (2); 401, 403 and 409 are a refusal, which is a failed check (1); 404 is
//! not found (3); 5xx, time-outs, an unreachable server and malformed
//! answers are internal (4).

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use breakglass_client::{Client, ClientError, normalize_server_url};
use breakglass_core::api::{
    ApiTokenView, ApproveRequest, CreateApiToken, ExtendRequest, GrantRequest, GrantView, LoginRequest, SessionView,
};
use breakglass_core::grant::{GrantState, human_duration, parse_duration};
use breakglass_core::scope::{Capability, Scope, check_request};
use breakglass_core::sshsig::LOGIN_NAMESPACE;
use breakglass_core::time::{Clock as _, Timestamp};
use breakglass_core::token::{Expect, KeySet, MAX_TOKEN_BYTES};
use serde_json::json;

use crate::cli::{
    ApproveArgs, ClientArgs, ExtendArgs, GrantCommand, GrantVerifyArgs, GrantsArgs, LoginArgs, LogoutArgs,
    PolicyReloadArgs, ReasonArgs, RequestArgs, SessionsArgs, SessionsCommand, ShowArgs, TokenArgs, TokenCommand,
    WhoamiArgs,
};
use crate::credentials::{self, CredentialStore, ServerCredentials};
use crate::error::{CliError, CliResult, ExitCode, bad_input, check_failed, internal, not_found};
use crate::print_json;

/// The environment variable that holds a bearer token (session or API token).
pub const TOKEN_ENV: &str = "BREAKGLASS_TOKEN";
/// The keys `login` tries, in order, under `~/.ssh`, when `--key` is not given.
const DEFAULT_KEYS: [&str; 5] = ["id_ed25519", "id_ecdsa", "id_rsa", "id_ed25519_sk", "id_ecdsa_sk"];
/// A login challenge longer than this is refused rather than signed.
const MAX_CHALLENGE_BYTES: usize = 4096;

fn now() -> Timestamp {
    crate::datadir::SystemClock.now()
}

/// The exit code an HTTP status deserves (the table in the module documentation).
fn exit_code_for_status(status: u16) -> ExitCode {
    match status {
        401 | 403 | 409 => ExitCode::CheckFailed,
        404 => ExitCode::NotFound,
        429 => ExitCode::Internal,
        400..=499 => ExitCode::BadInput,
        _ => ExitCode::Internal,
    }
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> CliError {
        cli_error(e, "log in again with `breakglass login --principal NAME`, or check BREAKGLASS_TOKEN")
    }
}

/// A client error as the CLI reports it; `unauthorized_hint` says what to
/// do about a 401 (a person logs in again; a CI job checks its identity).
pub fn cli_error(e: ClientError, unauthorized_hint: &str) -> CliError {
    {
        let code = match &e {
            ClientError::InvalidUrl { .. } | ClientError::InvalidToken | ClientError::InvalidArgument { .. } => {
                ExitCode::BadInput
            }
            ClientError::Api { status, .. } => exit_code_for_status(*status),
            ClientError::Setup(_)
            | ClientError::Unreachable { .. }
            | ClientError::TimedOut { .. }
            | ClientError::BadResponse { .. } => ExitCode::Internal,
        };
        let hint = match &e {
            ClientError::Unreachable { .. } => {
                "\nhint: is `breakglass serve` running there? Pass --server or set BREAKGLASS_SERVER to choose the server"
            }
            ClientError::Api { status: 401, .. } => &format!("\nhint: {unauthorized_hint}"),
            _ => "",
        };
        CliError { code, message: format!("{e}{hint}") }
    }
}

/// The server URL, normalised (bad input if it is unusable).
fn server_url(args: &ClientArgs) -> CliResult<String> {
    Ok(normalize_server_url(&args.server)?)
}

fn credential_store() -> CliResult<CredentialStore> {
    Ok(CredentialStore::at(credentials::default_path()?))
}

/// The bearer token: `BREAKGLASS_TOKEN` when set, else the session stored
/// for `server`. No token, or an expired session, is refused here (exit 1)
/// with the hint to log in, rather than by the server.
fn token_for(server: &str) -> CliResult<String> {
    if let Ok(token) = std::env::var(TOKEN_ENV)
        && !token.trim().is_empty()
    {
        return Ok(token);
    }
    let store = credential_store()?;
    match store.get(server)? {
        Some(entry) if entry.expires_at > now() => Ok(entry.token),
        Some(entry) => Err(check_failed(format!(
            "your session on {server} as {} expired at {} (hint: breakglass login --principal {} --server {server})",
            entry.principal, entry.expires_at, entry.principal
        ))),
        None => Err(check_failed(format!(
            "not logged in to {server}: no session for it in {} and {TOKEN_ENV} is not set \
             (hint: breakglass login --principal NAME --server {server})",
            store.path().display()
        ))),
    }
}

/// A client of the server `args` names, with the token (see [`token_for`]).
pub(crate) fn connect(args: &ClientArgs) -> CliResult<Client> {
    let server = server_url(args)?;
    let token = token_for(&server)?;
    Ok(Client::new(&server, Some(token))?)
}

/// `2026-11-18T11:06:40Z`: whole seconds, for tables and summaries.
fn short_time(ts: Timestamp) -> String {
    let full = ts.to_rfc3339();
    match full.split_once('.') {
        Some((secs, _)) if full.ends_with('Z') => format!("{secs}Z"),
        _ => full,
    }
}

/// `2026-11-18T11:06:40Z (in 29m59s)` or `… (2m ago)`.
fn when(ts: Timestamp, now: Timestamp) -> String {
    let delta = ts.millis() - now.millis();
    if delta >= 1000 {
        format!("{} (in {})", short_time(ts), human_duration(delta))
    } else if delta <= -1000 {
        format!("{} ({} ago)", short_time(ts), human_duration(-delta))
    } else {
        format!("{} (now)", short_time(ts))
    }
}

fn opt_time(ts: Option<Timestamp>) -> String {
    ts.map_or_else(|| "-".to_owned(), short_time)
}

/// Prints left-aligned columns, two spaces apart. Every cell is escaped
/// for the terminal ([`crate::display::line`]): cells hold stored text.
fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let rows: Vec<Vec<String>> =
        rows.iter().map(|row| row.iter().map(|cell| crate::display::line(cell).into_owned()).collect()).collect();
    let rows = &rows;
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (idx, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if idx + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// The state as a phrase: `active`, `pending (1 of 2 approvals)`, `revoked`.
fn state_phrase(view: &GrantView) -> String {
    match view.state {
        GrantState::Pending => {
            format!("pending ({} of {} approvals)", view.approvals.len(), view.approvals_required)
        }
        GrantState::Active if !view.effective => "active (not effective now)".to_owned(),
        state => state.as_str().to_owned(),
    }
}

/// The few lines that say where a grant stands: after request, approve,
/// deny, revoke and extend.
fn print_summary(view: &GrantView, now: Timestamp) {
    println!("grant    {}", view.id);
    println!("state    {}", state_phrase(view));
    match view.state {
        GrantState::Pending => {
            println!("lapses   {} unless approved", when(view.pending_until, now));
            println!("next     an approver runs `breakglass approve {}`", view.id);
        }
        GrantState::Active => {
            if let Some(expires) = view.expires_at {
                println!("expires  {}", when(expires, now));
            }
        }
        _ => {
            if let Some(ended) = view.ended_at {
                let by =
                    view.ended_by.as_deref().map(|b| format!(" by {}", crate::display::line(b))).unwrap_or_default();
                println!("ended    {}{by}", when(ended, now));
            }
        }
    }
}

fn print_grant(view: &GrantView, json: bool) {
    if json {
        print_json(view);
    } else {
        print_summary(view, now());
    }
}

fn non_empty(flag: &str, value: &str) -> CliResult<String> {
    if value.trim().is_empty() {
        return Err(bad_input(format!("{flag} must not be empty")));
    }
    Ok(value.to_owned())
}

fn check_duration(flag: &str, value: &str) -> CliResult {
    parse_duration(value).map(|_| ()).map_err(|e| bad_input(format!("{flag}: {e}")))
}

// ---------------------------------------------------------------------------
// login, logout, whoami

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

// ---------------------------------------------------------------------------
// grants

pub async fn request(args: RequestArgs) -> CliResult {
    let reason = non_empty("--reason", &args.reason)?;
    check_duration("--for", &args.duration)?;
    // Checked here for a quick, precise message; the server checks again.
    let scopes = args.scopes.iter().map(|s| Scope::parse(s)).collect::<Result<Vec<_>, _>>().map_err(|e| {
        bad_input(format!(
            "--scope: {e} (expected e.g. git:payments/api@refs/heads/main or pipeline:payments/api/deploy@production)"
        ))
    })?;
    let caps = args
        .caps
        .iter()
        .map(|c| Capability::parse(c))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_input(format!("--cap: {e}")))?;
    check_request(&scopes, &caps).map_err(|e| bad_input(format!("--cap: {e}")))?;
    if let Some(incident) = &args.incident {
        non_empty("--incident", incident)?;
    }
    let client = connect(&args.client)?;
    let view = client
        .request_grant(&GrantRequest {
            scopes: args.scopes,
            capabilities: args.caps,
            duration: args.duration,
            reason,
            incident: args.incident,
            drill: false,
        })
        .await?;
    print_grant(&view, args.json);
    Ok(())
}

pub async fn approve(args: ApproveArgs) -> CliResult {
    let client = connect(&args.client)?;
    let view = client.approve(&args.id, &ApproveRequest { comment: args.comment }).await?;
    print_grant(&view, args.json);
    Ok(())
}

pub async fn deny(args: ReasonArgs) -> CliResult {
    let reason = non_empty("--reason", &args.reason)?;
    let client = connect(&args.client)?;
    let view = client.deny(&args.id, &reason).await?;
    print_grant(&view, args.json);
    Ok(())
}

pub async fn revoke(args: ReasonArgs) -> CliResult {
    let reason = non_empty("--reason", &args.reason)?;
    let client = connect(&args.client)?;
    let view = client.revoke(&args.id, &reason).await?;
    print_grant(&view, args.json);
    Ok(())
}

pub async fn extend(args: ExtendArgs) -> CliResult {
    let reason = non_empty("--reason", &args.reason)?;
    check_duration("--by", &args.by)?;
    let client = connect(&args.client)?;
    let view = client.extend(&args.id, &ExtendRequest { by: args.by, reason }).await?;
    print_grant(&view, args.json);
    Ok(())
}

pub async fn grants(args: GrantsArgs) -> CliResult {
    let client = connect(&args.client)?;
    let principal = args.principal.as_deref();
    // The API filters on one state at a time; both flags ask twice and merge.
    let mut states = Vec::new();
    if args.active {
        states.push(GrantState::Active);
    }
    if args.pending {
        states.push(GrantState::Pending);
    }
    let mut list = if states.is_empty() {
        client.list_grants(None, principal).await?.grants
    } else {
        let mut all = Vec::new();
        for state in &states {
            all.extend(client.list_grants(Some(*state), principal).await?.grants);
        }
        if states.len() > 1 {
            all.sort_by(|a, b| b.requested_at.cmp(&a.requested_at).then_with(|| a.id.cmp(&b.id)));
        }
        all
    };
    // The server shows a grant past its expiry as expired even before writing that down; so does --active.
    if !states.is_empty() {
        list.retain(|g| states.contains(&g.state));
    }
    if args.json {
        print_json(&json!({ "grants": list }));
        return Ok(());
    }
    if list.is_empty() {
        println!("no grants");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|g| {
            vec![
                g.id.clone(),
                g.principal.clone(),
                state_phrase(g),
                g.scopes.join(","),
                g.capabilities.join(","),
                match g.state {
                    GrantState::Pending => format!("lapses {}", short_time(g.pending_until)),
                    _ => opt_time(g.expires_at),
                },
            ]
        })
        .collect();
    print_table(&["ID", "PRINCIPAL", "STATE", "SCOPES", "CAPABILITIES", "EXPIRES"], &rows);
    Ok(())
}

pub async fn incidents(args: crate::cli::IncidentsArgs) -> CliResult {
    use crate::cli::IncidentsCommand;
    if let Some(IncidentsCommand::Show { id, json, client }) = args.command {
        let i = connect(&client)?.incident(&id).await?;
        if json {
            print_json(&i);
            return Ok(());
        }
        let field = |name: &str, value: String| println!("{name:<12}{}", crate::display::line(&value));
        field("id", i.id.clone());
        field("title", i.title.clone());
        field("severity", i.severity.to_string());
        field("status", i.status.clone());
        field("services", if i.services.is_empty() { "-".into() } else { i.services.join(", ") });
        let who: Vec<String> = i
            .responders
            .iter()
            .map(|r| {
                let named = r.name.clone().or_else(|| r.email.clone()).or_else(|| r.id.clone()).unwrap_or_default();
                match &r.principal {
                    Some(p) => format!("{named} (principal {p})"),
                    None => format!("{named} (not a principal)"),
                }
            })
            .collect();
        field("responders", if who.is_empty() { "-".into() } else { who.join("; ") });
        field("opened", short_time(i.opened_at));
        field("updated", short_time(i.updated_at));
        field("resolved", opt_time(i.resolved_at));
        field("url", i.url.clone().unwrap_or_else(|| "-".into()));
        return Ok(());
    }
    let list = connect(&args.client)?.incidents(args.open).await?;
    if args.json {
        print_json(&list);
        return Ok(());
    }
    if list.incidents.is_empty() {
        println!("no incidents");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list
        .incidents
        .iter()
        .map(|i| {
            let principals: Vec<&str> = i.responders.iter().filter_map(|r| r.principal.as_deref()).collect();
            vec![
                i.id.clone(),
                i.severity.to_string(),
                i.status.clone(),
                i.services.join(","),
                if principals.is_empty() { "-".into() } else { principals.join(",") },
                i.title.clone(),
            ]
        })
        .collect();
    print_table(&["ID", "SEV", "STATUS", "SERVICES", "RESPONDERS", "TITLE"], &rows);
    Ok(())
}

pub async fn stats(since: Option<String>, json: bool, client: ClientArgs) -> CliResult {
    let since = since.map(|s| if s.len() == 10 { format!("{s}T00:00:00Z") } else { s });
    let s = connect(&client)?.stats(since.as_deref()).await?;
    if json {
        print_json(&s);
        return Ok(());
    }
    let d = |d: &breakglass_core::api::DurationStats| {
        if d.count == 0 {
            "-".to_owned()
        } else {
            format!(
                "p50 {}, p90 {}, max {} ({} grants)",
                breakglass_core::grant::human_duration(d.p50_ms),
                breakglass_core::grant::human_duration(d.p90_ms),
                breakglass_core::grant::human_duration(d.max_ms),
                d.count
            )
        }
    };
    println!(
        "grants requested    {}{}",
        s.requested,
        s.since.map_or(String::new(), |t| format!(" since {}", t.to_rfc3339()))
    );
    println!(
        "activated           {} ({} with no human approval); refused, denied or lapsed {}",
        s.activated, s.auto_approved, s.refused_or_lapsed
    );
    println!("request to active   {}", d(&s.request_to_active));
    println!("active for          {}", d(&s.active_for));
    println!(
        "reviews             {} open, {} overdue, {} approved, {} flagged",
        s.reviews_open, s.reviews_overdue, s.reviews_approved, s.reviews_flagged
    );
    let top = |v: &[breakglass_core::api::CountBy]| {
        v.iter().take(10).map(|c| format!("{} {}", c.name, c.count)).collect::<Vec<_>>().join(", ")
    };
    println!("by principal        {}", top(&s.by_principal));
    println!("by scope            {}", top(&s.by_scope));
    Ok(())
}

pub async fn review(cmd: crate::cli::ReviewCommand) -> CliResult {
    use crate::cli::ReviewCommand;
    match cmd {
        ReviewCommand::List { open, overdue, json, client } => {
            let list = connect(&client)?.reviews(open, overdue).await?;
            if json {
                print_json(&list);
                return Ok(());
            }
            if list.reviews.is_empty() {
                println!("no reviews");
                return Ok(());
            }
            let rows: Vec<Vec<String>> = list
                .reviews
                .iter()
                .map(|r| {
                    let status = if r.overdue { "overdue".to_owned() } else { r.status.clone() };
                    vec![
                        r.id.clone(),
                        r.grant.clone(),
                        r.principal.clone(),
                        status,
                        short_time(r.deadline),
                        r.reviewer.clone().unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            print_table(&["ID", "GRANT", "GRANTEE", "STATUS", "DUE", "REVIEWER"], &rows);
            Ok(())
        }
        ReviewCommand::Show { id, json, client } => {
            let r = connect(&client)?.review(&id).await?;
            if json {
                print_json(&r);
                return Ok(());
            }
            print_review(&r);
            Ok(())
        }
        ReviewCommand::Export { id, format, output, client } => {
            use crate::cli::ReportFormat;
            let report = connect(&client)?.export_review(&id).await?;
            let text = match format {
                ReportFormat::Json => {
                    serde_json::to_string_pretty(&report).map_err(|e| internal(e.to_string()))? + "\n"
                }
                ReportFormat::Md => breakglass_core::report::to_markdown(&report),
                ReportFormat::Html => breakglass_core::report::to_html(&report),
            };
            match output {
                Some(path) => {
                    std::fs::write(&path, text)
                        .map_err(|e| bad_input(format!("cannot write {}: {e}", path.display())))?;
                    eprintln!(
                        "wrote the report of review {} ({} entries, proven at tree size {}) to {}",
                        report.review.id,
                        report.events.len(),
                        report.checkpoint.lines().nth(1).unwrap_or("?"),
                        path.display()
                    );
                }
                None => print!("{text}"),
            }
            Ok(())
        }
        ReviewCommand::Approve(a) | ReviewCommand::Flag(a) if a.notes.trim().is_empty() => Err(
            crate::error::bad_input(format!("--notes for review {}: say what was checked and what was found", a.id)),
        ),
        ReviewCommand::Approve(a) => decide(a, true).await,
        ReviewCommand::Flag(a) => decide(a, false).await,
    }
}

async fn decide(a: crate::cli::ReviewDecisionArgs, approve: bool) -> CliResult {
    let d = breakglass_core::api::ReviewDecision { notes: a.notes, lessons: a.lessons, follow_ups: a.follow_ups };
    let r = connect(&a.client)?.decide_review(&a.id, approve, &d).await?;
    if a.json {
        print_json(&r);
    } else {
        println!("review {} of grant {} {} by {}", r.id, r.grant, r.status, r.reviewer.as_deref().unwrap_or("?"));
    }
    Ok(())
}

fn print_review(r: &breakglass_core::api::ReviewView) {
    let field = |name: &str, value: String| println!("{name:<12}{}", crate::display::line(&value));
    field("review", r.id.clone());
    field("grant", format!("{} of {} ({})", r.grant, r.principal, r.grant_end));
    field("scopes", r.scopes.join(", "));
    field("status", if r.overdue { format!("{} (overdue)", r.status) } else { r.status.clone() });
    field("due", short_time(r.deadline));
    if let Some(who) = &r.reviewer {
        field("reviewer", format!("{who} at {}", opt_time(r.decided_at)));
        // Notes are prose: their lines are kept, indented under the label.
        println!("{:<12}{}", "notes", crate::display::prose(&r.notes).replace('\n', &format!("\n{:12}", "")));
        for l in &r.lessons {
            field("lesson", l.clone());
        }
        for f in &r.follow_ups {
            field("follow-up", f.clone());
        }
    }
    println!();
    println!("timeline ({} entries):", r.timeline.len());
    for e in &r.timeline {
        println!(
            "  #{:<8} {}  {:<18} {}",
            e.index,
            crate::display::line(&e.time),
            crate::display::line(&e.kind),
            crate::display::line(&e.summary)
        );
    }
}

pub async fn notifications(args: crate::cli::NotificationsArgs) -> CliResult {
    use crate::cli::NotificationsCommand;
    if let Some(NotificationsCommand::Retry { id, json, client }) = args.command {
        let n = connect(&client)?.retry_notification(&id).await?;
        if json {
            print_json(&n);
        } else {
            println!("notification {} queued again", n.id);
        }
        return Ok(());
    }
    let list = connect(&args.client)?.notifications(args.status.as_deref()).await?;
    if args.json {
        print_json(&list);
        return Ok(());
    }
    if list.notifications.is_empty() {
        println!("no notifications");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list
        .notifications
        .iter()
        .map(|n| {
            let state = match (n.status.as_str(), n.next_attempt_at) {
                ("pending", Some(at)) if n.attempts > 0 => format!("retry {}", short_time(at)),
                ("pending", Some(at)) => format!("pending {}", short_time(at)),
                (s, _) => s.to_owned(),
            };
            vec![
                n.id.clone(),
                n.channel.clone(),
                n.event.clone(),
                n.grant.clone(),
                state,
                n.attempts.to_string(),
                n.last_error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    print_table(&["ID", "CHANNEL", "EVENT", "GRANT", "STATE", "ATTEMPTS", "LAST ERROR"], &rows);
    Ok(())
}

pub async fn show(args: ShowArgs) -> CliResult {
    let client = connect(&args.client)?;
    let view = client.grant(&args.id).await?;
    if args.json {
        print_json(&view);
        return Ok(());
    }
    let now = now();
    // Every value is escaped: the reason, extension reasons and end reason
    // were written by the requester or an approver.
    let field = |name: &str, value: String| println!("{name:<14}{}", crate::display::line(&value));
    field("id", view.id.clone());
    field("principal", view.principal.clone());
    field("state", format!("{}{}", state_phrase(&view), if view.effective { ", effective now" } else { "" }));
    field("scopes", view.scopes.join(", "));
    field("capabilities", view.capabilities.join(", "));
    field("reason", view.reason.clone());
    field("incident", view.incident.clone().unwrap_or_else(|| "-".into()));
    field("requested", when(view.requested_at, now));
    field("duration", format!("{} (policy maximum {})", view.duration, view.max_duration));
    let approvals = if view.approvals.is_empty() {
        format!("none of {} required", view.approvals_required)
    } else {
        let who: Vec<String> = view.approvals.iter().map(|a| format!("{} at {}", a.by, short_time(a.at))).collect();
        format!("{} of {} required: {}", view.approvals.len(), view.approvals_required, who.join("; "))
    };
    field("approvals", approvals);
    if view.state == GrantState::Pending {
        field("pending until", when(view.pending_until, now));
    }
    field("activated", view.activated_at.map_or_else(|| "-".into(), |t| when(t, now)));
    field("expires", view.expires_at.map_or_else(|| "-".into(), |t| when(t, now)));
    if view.extensions.is_empty() {
        field("extensions", "none".into());
    }
    for (idx, ext) in view.extensions.iter().enumerate() {
        let name = if idx == 0 { "extensions" } else { "" };
        field(
            name,
            format!("+{} by {} at {}: {}", human_duration(ext.added_ms), ext.by, short_time(ext.at), ext.reason),
        );
    }
    if let Some(ended) = view.ended_at {
        let by = view.ended_by.as_deref().unwrap_or("the server");
        let why = view.end_reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
        field("ended", format!("{} by {by}{why}", when(ended, now)));
    }
    let indexes: Vec<String> = view.log_indexes.iter().map(u64::to_string).collect();
    field("log entries", if indexes.is_empty() { "-".into() } else { indexes.join(", ") });
    Ok(())
}

// ---------------------------------------------------------------------------
// tokens

pub async fn token(args: TokenArgs) -> CliResult {
    match args.command {
        Some(TokenCommand::Create { name, role, expires_in, json, client }) => {
            let name = non_empty("--name", &name)?;
            let client = connect(&client)?;
            let created =
                client.create_api_token(&CreateApiToken { name, role: role.as_str().to_owned(), expires_in }).await?;
            if json {
                print_json(&created);
            } else {
                println!("{}", created.token);
            }
            let _ = std::io::stdout().flush();
            eprintln!(
                "warning: this is the only time API token {} ({}, role {}) is shown; store it now. Expires: {}.",
                created.view.id,
                created.view.name,
                created.view.role,
                created.view.expires_at.map_or_else(|| "never".into(), short_time)
            );
            Ok(())
        }
        Some(TokenCommand::List { json, client }) => {
            let client = connect(&client)?;
            let list = client.list_api_tokens().await?;
            if json {
                print_json(&list);
            } else if list.tokens.is_empty() {
                println!("no API tokens");
            } else {
                let rows: Vec<Vec<String>> = list.tokens.iter().map(api_token_row).collect();
                print_table(&["ID", "NAME", "ROLE", "CREATED", "BY", "EXPIRES", "REVOKED"], &rows);
            }
            Ok(())
        }
        Some(TokenCommand::Revoke { id, json, client }) => {
            let client = connect(&client)?;
            let view = client.revoke_api_token(&id).await?;
            if json {
                print_json(&view);
            } else {
                println!("revoked API token {} ({}, role {})", view.id, view.name, view.role);
            }
            Ok(())
        }
        None => {
            let Some(id) = args.id else {
                return Err(bad_input("give a grant id (breakglass token ID) or a subcommand: create, list, revoke"));
            };
            let client = connect(&args.client)?;
            let res = client.grant_token(&id).await?;
            if let Some(out) = &args.out {
                write_private(out, format!("{}\n", res.token).as_bytes())?;
                eprintln!("wrote the grant token to {} (expires {})", out.display(), short_time(res.expires_at));
            } else if args.json {
                print_json(&res);
            } else {
                println!("{}", res.token);
            }
            Ok(())
        }
    }
}

fn api_token_row(t: &ApiTokenView) -> Vec<String> {
    vec![
        t.id.clone(),
        t.name.clone(),
        t.role.clone(),
        short_time(t.created_at),
        t.created_by.clone(),
        t.expires_at.map_or_else(|| "never".into(), short_time),
        opt_time(t.revoked_at),
    ]
}

/// Writes a secret to `path` with mode 0600 (also when the file existed with another mode).
fn write_private(path: &Path, bytes: &[u8]) -> CliResult {
    let fail = |e: std::io::Error| bad_input(format!("cannot write {}: {e}", path.display()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut file = opts.open(path).map_err(fail)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
    }
    file.write_all(bytes).map_err(fail)?;
    file.sync_all().map_err(fail)
}

// ---------------------------------------------------------------------------
// grant verify

pub async fn grant(cmd: GrantCommand) -> CliResult {
    match cmd {
        GrantCommand::Verify(args) => verify(*args).await,
    }
}

fn read_token(arg: &str) -> CliResult<String> {
    if arg != "-" {
        return Ok(arg.trim().to_owned());
    }
    let mut text = String::new();
    // A little over the limit, so that verify reports an oversized token as such.
    std::io::stdin()
        .take(MAX_TOKEN_BYTES as u64 + 1024)
        .read_to_string(&mut text)
        .map_err(|e| bad_input(format!("cannot read the token from standard input: {e}")))?;
    Ok(text.trim().to_owned())
}

async fn verify(args: GrantVerifyArgs) -> CliResult {
    let token = read_token(&args.token)?;
    if token.is_empty() {
        return Err(bad_input("the grant token is empty"));
    }
    let scope = Scope::parse(&args.scope).map_err(|e| bad_input(format!("--scope: {e}")))?;
    let cap = Capability::parse(&args.cap).map_err(|e| bad_input(format!("--cap: {e}")))?;
    let max_lifetime = parse_duration(&args.max_lifetime)
        .map(|ms| Duration::from_millis(ms.unsigned_abs()))
        .map_err(|e| bad_input(format!("--max-lifetime: {e}")))?;
    let server = server_url(&args.client)?;
    let (source, text) = if let Some(path) = &args.key {
        let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => not_found(format!("key file {} not found", path.display())),
            _ => bad_input(format!("cannot read the key file {}: {e}", path.display())),
        })?;
        (path.display().to_string(), text)
    } else if let Some(url) = &args.jwks_url {
        (url.clone(), breakglass_client::fetch_jwks(url).await?)
    } else {
        let client = Client::new(&server, None)?;
        (format!("{server}/.well-known/jwks.json"), client.jwks().await?)
    };
    let keys = KeySet::parse(&text).map_err(|e| bad_input(format!("the keys from {source}: {e}")))?;
    let issuer = args.issuer.clone().unwrap_or_else(|| server.clone());
    let mut expect = Expect::new(issuer, max_lifetime).with_scope(scope).with_capability(cap);
    if let Some(principal) = &args.principal {
        expect = expect.with_principal(principal.clone());
    }
    let refuse = |why: String| {
        if args.json {
            print_json(&json!({ "valid": false, "error": why }));
        }
        check_failed(why)
    };
    let claims = match breakglass_core::token::verify(&token, &keys, &expect, now()) {
        Ok(claims) => claims,
        Err(e) => return Err(refuse(format!("the grant token is not valid: {e}"))),
    };
    let mut online = None;
    if args.also_online {
        let client = connect(&args.client)?;
        let status = client.grant_status(&claims.grant_id).await?;
        if status.state != GrantState::Active || !status.effective {
            return Err(refuse(format!(
                "the grant token verifies offline, but the server says grant {} is {}{}",
                claims.grant_id,
                status.state.as_str(),
                if status.state == GrantState::Active { " and not effective now" } else { "" }
            )));
        }
        online = Some(status);
    }
    if args.json {
        print_json(&json!({
            "valid": true,
            "claims": {
                "grant": claims.grant_id,
                "principal": claims.principal,
                "scopes": claims.scopes,
                "capabilities": claims.capabilities,
                "issuer": claims.issuer,
                "audience": claims.audience,
                "key_id": claims.key_id,
                "not_before": claims.not_before,
                "expires_at": claims.expires_at,
                "issued_at": claims.issued_at,
                "token_id": claims.token_id,
            },
            "online": online,
        }));
    } else {
        println!(
            "valid: grant {} of {} allows {} on {}",
            claims.grant_id,
            claims.principal,
            expect.capability.as_ref().map(ToString::to_string).unwrap_or_default(),
            expect.scope.as_ref().map(ToString::to_string).unwrap_or_default()
        );
        println!("expires  {}", when(claims.expires_at, now()));
        println!("key      {} (issuer {})", claims.key_id, claims.issuer);
        if online.is_some() {
            println!("online   the server says the grant is active");
        } else {
            println!("online   not checked: a revocation would not show here (use --also-online)");
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// policy reload

pub async fn policy_reload(args: PolicyReloadArgs) -> CliResult {
    let client = connect(&args.client)?;
    let reloaded = client.reload_policy().await?;
    if args.json {
        print_json(&reloaded);
    } else {
        println!(
            "policy reloaded on {}: {} policies, {} principals",
            client.base_url(),
            reloaded.policies,
            reloaded.principals
        );
        for file in &reloaded.files {
            println!("  {file}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::cli::{Cli, Command};

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("breakglass").chain(args.iter().copied()))
    }

    #[test]
    fn token_with_an_id_prints_a_grant_token() {
        let cli = parse(&["token", "g_0123", "--out", "t.jwt"]).unwrap();
        let Command::Token(args) = cli.command else { panic!("not token: {cli:?}") };
        assert!(args.command.is_none());
        assert_eq!(args.id.as_deref(), Some("g_0123"));
        assert_eq!(args.out, Some(PathBuf::from("t.jwt")));
    }

    #[test]
    fn token_create_list_revoke_are_subcommands() {
        let cli = parse(&["token", "create", "--name", "ci", "--role", "service", "--expires-in", "720h"]).unwrap();
        let Command::Token(args) = cli.command else { panic!("not token") };
        assert!(args.id.is_none());
        let Some(TokenCommand::Create { name, role, expires_in, .. }) = args.command else { panic!("not create") };
        assert_eq!((name.as_str(), role.as_str(), expires_in.as_deref()), ("ci", "service", Some("720h")));

        let cli = parse(&["token", "list", "--json"]).unwrap();
        let Command::Token(args) = cli.command else { panic!("not token") };
        assert!(matches!(args.command, Some(TokenCommand::List { json: true, .. })));

        let cli = parse(&["token", "revoke", "tok_1", "--server", "https://bg.example"]).unwrap();
        let Command::Token(args) = cli.command else { panic!("not token") };
        let Some(TokenCommand::Revoke { id, client, .. }) = args.command else { panic!("not revoke") };
        assert_eq!((id.as_str(), client.server.as_str()), ("tok_1", "https://bg.example"));
    }

    #[test]
    fn token_needs_an_id_or_a_subcommand() {
        assert!(parse(&["token"]).is_err());
        assert!(parse(&["token", "create", "--name", "ci"]).is_err(), "--role is required");
        assert!(parse(&["token", "create", "--name", "ci", "--role", "root"]).is_err(), "unknown role");
        // A grant id and a subcommand together make no sense.
        assert!(parse(&["token", "g_1", "list"]).is_err());
    }

    #[test]
    fn request_requires_a_reason_scope_and_cap() {
        let base = ["request", "--scope", "git:a/b@refs/heads/main", "--cap", "push"];
        let err = parse(&base).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        assert_eq!(err.exit_code(), ExitCode::BadInput as i32);
        assert!(err.to_string().contains("--reason"), "{err}");

        let cli = parse(&[&base[..], &["--reason", "prod down", "--for", "45m", "--incident", "P1"]].concat()).unwrap();
        let Command::Request(args) = cli.command else { panic!("not request") };
        assert_eq!(args.scopes, ["git:a/b@refs/heads/main"]);
        assert_eq!(args.caps, ["push"]);
        assert_eq!((args.duration.as_str(), args.incident.as_deref()), ("45m", Some("P1")));

        assert!(parse(&["request", "--cap", "push", "--reason", "r"]).is_err(), "--scope is required");
        assert!(parse(&["request", "--scope", "git:a/b@refs/heads/main", "--reason", "r"]).is_err(), "--cap");
    }

    #[test]
    fn deny_revoke_extend_require_reasons() {
        assert!(parse(&["deny", "g_1"]).is_err());
        assert!(parse(&["revoke", "g_1"]).is_err());
        assert!(parse(&["extend", "g_1", "--by", "15m"]).is_err());
        assert!(parse(&["extend", "g_1", "--by", "15m", "--reason", "still fixing"]).is_ok());
        assert!(parse(&["approve", "g_1"]).is_ok(), "a comment is optional");
    }

    #[test]
    fn grant_verify_key_and_jwks_url_conflict() {
        let base = ["grant", "verify", "-", "--scope", "git:a/b@refs/heads/main", "--cap", "push"];
        assert!(parse(&base).is_ok());
        let both = [&base[..], &["--key", "k.json", "--jwks-url", "https://x/jwks.json"]].concat();
        assert!(parse(&both).is_err());
        assert!(parse(&["grant", "verify", "-", "--cap", "push"]).is_err(), "--scope is required");
    }

    #[test]
    fn policy_reload_is_a_policy_subcommand() {
        let cli = parse(&["policy", "reload", "--json"]).unwrap();
        assert!(matches!(cli.command, Command::Policy(crate::cli::PolicyCommand::Reload(_))));
    }

    #[test]
    fn the_server_defaults_to_loopback() {
        // Unless BREAKGLASS_SERVER is set in the environment running the tests.
        if std::env::var_os("BREAKGLASS_SERVER").is_some() {
            return;
        }
        let cli = parse(&["whoami"]).unwrap();
        let Command::Whoami(args) = cli.command else { panic!("not whoami") };
        assert_eq!(args.client.server, breakglass_client::DEFAULT_SERVER);
    }

    #[test]
    fn http_statuses_map_to_exit_codes() {
        let cases = [
            (400, ExitCode::BadInput),
            (401, ExitCode::CheckFailed),
            (403, ExitCode::CheckFailed),
            (404, ExitCode::NotFound),
            (409, ExitCode::CheckFailed),
            (413, ExitCode::BadInput),
            (422, ExitCode::BadInput),
            (429, ExitCode::Internal),
            (500, ExitCode::Internal),
            (503, ExitCode::Internal),
        ];
        for (status, code) in cases {
            assert_eq!(exit_code_for_status(status), code, "{status}");
        }
        let unreachable = ClientError::Unreachable { url: "http://127.0.0.1:1/v1/whoami".into(), detail: "x".into() };
        let err = CliError::from(unreachable);
        assert_eq!(err.code, ExitCode::Internal);
        assert!(err.message.contains("hint"), "{}", err.message);
    }

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

    #[test]
    fn times_are_shown_in_whole_seconds() {
        let t = Timestamp(1_795_000_000_123);
        assert_eq!(short_time(t), "2026-11-18T11:06:40Z");
        assert_eq!(when(t, Timestamp(t.0 - 30 * 60_000)), "2026-11-18T11:06:40Z (in 30m)");
        assert_eq!(when(t, Timestamp(t.0 + 90_000)), "2026-11-18T11:06:40Z (1m30s ago)");
    }
}
