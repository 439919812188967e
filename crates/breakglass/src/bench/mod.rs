//! `breakglass bench …`: the benchmarks, one file each, on the real code:
//! the ledger on SQLite, the in-process decisions, and real `breakglass
//! serve` processes in a sandbox (`crate::sandbox`) for the server, the Git
//! hooks, CI steps and incidents. Figures are printed, never asserted:
//! speed is measured here, not in tests. `measure` holds what they all
//! measure with.

mod ci;
mod core;
mod git;
mod incident;
mod ledger;
mod measure;
mod server;

use std::path::Path;

use breakglass_client::Client;

use crate::cli::BenchCommand;
use crate::error::{CliResult, internal};
use crate::sandbox::{ServerProcess, login, new_ssh_key};

pub async fn run(command: BenchCommand) -> CliResult {
    match command {
        BenchCommand::Ledger(args) => ledger::ledger(args).await,
        BenchCommand::Core { iterations, json } => core::core(iterations, json),
        BenchCommand::Server(args) => server::server(args).await,
        BenchCommand::Git(args) => git::git(args).await,
        BenchCommand::Ci(args) => ci::ci(args).await,
        BenchCommand::Incident(args) => incident::incident(args).await,
    }
}

/// Starts the benchmarks' `breakglass serve` over `data` in the sandbox;
/// returns it with its URL and the bootstrap admin token.
async fn start_server(data: &Path) -> CliResult<(ServerProcess, String, String)> {
    crate::sandbox::start_server(data, "bench.breakglass.local/server", &[]).await
}

/// A benchmark's sandbox server with one principal, alice, logged in.
struct AliceSandbox {
    /// The server stops when this is dropped.
    server: ServerProcess,
    url: String,
    alice: Client,
}

/// Makes alice a key under `root` and starts the benchmarks' server over
/// `data` (its configuration written already); then names her in the
/// principals file with `fields` (TOML lines: groups, accounts, e-mails),
/// adds the `policies` (file name, text), reloads, and logs her in.
async fn start_with_alice(
    root: &Path,
    data: &Path,
    fields: &str,
    policies: &[(&str, &str)],
) -> CliResult<AliceSandbox> {
    let key = root.join("alice");
    let public_key = new_ssh_key(&key, "alice")?;
    eprintln!("starting breakglass serve on SQLite in {}...", data.display());
    let (server, url, admin_token) = start_server(data).await?;
    let principal = format!("[[principal]]\nname = \"alice\"\n{fields}ssh_keys = [\"{public_key}\"]\n");
    std::fs::write(data.join("principals.toml"), principal)
        .map_err(|e| internal(format!("cannot write the principals file: {e}")))?;
    for (name, text) in policies {
        std::fs::write(data.join("policy").join(name), text)
            .map_err(|e| internal(format!("cannot write the bench policy: {e}")))?;
    }
    let admin = Client::new(&url, Some(admin_token))?;
    admin.reload_policy().await.map_err(|e| internal(format!("policy reload refused: {e}")))?;
    let session = login(&url, "alice", &key, root).await?;
    let alice = Client::new(&url, Some(session))?;
    Ok(AliceSandbox { server, url, alice })
}
