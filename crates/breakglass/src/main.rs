//! The `breakglass` binary: argument parsing, configuration, tracing, and
//! dispatch to the library crates. This is the only crate that reads argv and
//! environment variables.

mod audit;
mod bench;
mod cli;
mod config;
mod datadir;
mod debug;
mod error;
mod policy;

use std::io::Write as _;
use std::path::PathBuf;

use clap::{CommandFactory as _, Parser as _};

use crate::cli::{Cli, Command};
use crate::error::CliResult;

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BREAKGLASS_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(error::ExitCode::Internal as i32);
        }
    };
    let res = runtime.block_on(run(cli));
    if let Err(e) = res {
        let _ = std::io::stdout().flush();
        eprintln!("error: {e}");
        std::process::exit(e.code as i32);
    }
}

fn data_dir(cli_dir: &Option<PathBuf>) -> PathBuf {
    cli_dir.clone().unwrap_or_else(datadir::default_data_dir)
}

async fn run(cli: Cli) -> CliResult {
    let loc = datadir::Location {
        root: data_dir(&cli.global.data_dir),
        config_file: cli.global.config.clone(),
        database_url: cli.global.database_url.clone(),
    };
    match cli.command {
        Command::Init(args) => {
            let (_, report) = datadir::DataDir::init(&loc, args.origin).await?;
            if args.json {
                print_json(&report);
            } else {
                for p in &report.created {
                    println!("created  {}", p.display());
                }
                for p in &report.existing {
                    println!("kept     {}", p.display());
                }
                println!("origin   {}", report.origin);
                println!("log key  {}", report.verifier_key);
                println!("next: breakglass audit checkpoint --data-dir {}", report.data_dir.display());
            }
            Ok(())
        }
        Command::Audit(cmd) => audit::run(&loc, cmd).await,
        Command::Policy(cmd) => policy::run(cmd),
        Command::Bench(cli::BenchCommand::Ledger(args)) => bench::ledger(args).await,
        Command::Bench(cli::BenchCommand::Core { iterations, json }) => bench::core(iterations, json),
        Command::Debug(cmd) => debug::run(&loc, cmd).await,
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "breakglass", &mut std::io::stdout());
            Ok(())
        }
    }
}

pub fn print_json<T: serde::Serialize>(value: &T) {
    println!("{}", serde_json::to_string_pretty(value).expect("JSON output serialises"));
}
