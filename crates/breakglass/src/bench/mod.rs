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

use crate::cli::BenchCommand;
use crate::error::CliResult;
use crate::sandbox::ServerProcess;

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
