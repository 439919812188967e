//! The client commands: `login`, `logout`, `whoami`, `request`, `approve`,
//! `deny`, `revoke`, `extend`, `grants`, `show`, `token …`, `grant verify`
//! and `policy reload`. Each talks to a breakglass server through
//! `breakglass-client` and maps the answer to output and an exit code.
//!
//! Security: it handles session, API and grant tokens, which other local
//! users must not see. Tokens are read from `BREAKGLASS_TOKEN` or the
//! credentials file, never from argv (other users can read the process
//! list); they are printed only where the user asked for exactly that
//! (`token ID`, `token create`), and never in an error.
//!
//! Exit codes (see `cli::CLIENT_HELP`): HTTP 400, 413 and 422 are bad input
//! (2); 401, 403 and 409 are a refusal, which is a failed check (1); 404 is
//! not found (3); 5xx, time-outs, an unreachable server and malformed
//! answers are internal (4).

mod forge;
mod grants;
mod login;
mod reload;
mod tokens;
mod verify;

use breakglass_client::{Client, ClientError, normalize_server_url};
use breakglass_core::api::GrantView;
use breakglass_core::grant::{GrantState, human_duration, parse_duration};
use breakglass_core::time::{Clock as _, Timestamp};

use crate::cli::ClientArgs;
use crate::credentials::{self, CredentialStore};
use crate::error::{CliError, CliResult, ExitCode, bad_input, check_failed};
use crate::print_json;

/// The environment variable that holds a bearer token (session or API token).
pub const TOKEN_ENV: &str = "BREAKGLASS_TOKEN";

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

pub use forge::forge;
pub use grants::{approve, deny, extend, grants, incidents, notifications, request, review, revoke, show, stats};
pub use login::{login, logout, sessions, whoami};
pub use reload::policy_reload;
pub use tokens::token;
pub use verify::grant;

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::cli::{Cli, Command};

    pub(super) fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("breakglass").chain(args.iter().copied()))
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
    fn times_are_shown_in_whole_seconds() {
        let t = Timestamp(1_795_000_000_123);
        assert_eq!(short_time(t), "2026-11-18T11:06:40Z");
        assert_eq!(when(t, Timestamp(t.0 - 30 * 60_000)), "2026-11-18T11:06:40Z (in 30m)");
        assert_eq!(when(t, Timestamp(t.0 + 90_000)), "2026-11-18T11:06:40Z (1m30s ago)");
    }
}
