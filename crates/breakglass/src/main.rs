//! The `breakglass` binary: argument parsing, configuration, tracing, and
//! dispatch to the library crates. This is the only crate that reads argv and
//! environment variables.

mod audit;
mod bench;
mod ci;
mod cli;
mod client;
mod config;
mod credentials;
mod datadir;
mod debug;
mod display;
mod drift;
mod drill;
mod error;
mod git;
mod policy;
mod sandbox;
mod serve;

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
    if matches!(cli.command, Command::Serve(_)) {
        // A panic in a request handler is answered 500 by the router; here
        // it costs one line of the server's log, not a backtrace per request.
        std::panic::set_hook(Box::new(|info| {
            let msg = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".into());
            let at = info.location().map_or(String::new(), |l| format!("{}:{}", l.file(), l.line()));
            tracing::error!(at, "panic: {}", msg.replace('\n', " "));
        }));
    }
    // Git hooks run on every push: a single-threaded runtime starts faster,
    // and a hook does one thing at a time anyway.
    let hook = matches!(cli.command, Command::Git(cli::GitCommand::Hook { .. }));
    let mut builder =
        if hook { tokio::runtime::Builder::new_current_thread() } else { tokio::runtime::Builder::new_multi_thread() };
    let runtime = match builder.enable_all().build() {
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
            let (dir, report) = datadir::DataDir::init(&loc, args.origin).await?;
            let listen = dir.config.server.listen.clone();
            let clock = std::sync::Arc::new(datadir::SystemClock);
            let (service, ledger) = serve::open_service(&dir, clock, serve::public_url(&dir, &listen)).await?;
            let admin = serve::bootstrap_admin(&service).await;
            drop(service);
            ledger.shutdown().await;
            let admin = admin?;
            if args.json {
                let mut v = serde_json::to_value(&report).expect("report serialises");
                v["admin_token"] = serde_json::json!(admin);
                print_json(&v);
            } else {
                if let Some(token) = &admin {
                    serve::print_admin_token(token);
                }
                for p in &report.created {
                    println!("created  {}", p.display());
                }
                for p in &report.existing {
                    println!("kept     {}", p.display());
                }
                println!("origin   {}", report.origin);
                println!("log key  {}", report.verifier_key);
                println!("next: breakglass serve --data-dir {}", report.data_dir.display());
            }
            Ok(())
        }
        Command::Serve(args) => serve::run(&loc, args).await,
        Command::Audit(cmd) => audit::run(&loc, cmd).await,
        Command::Policy(cli::PolicyCommand::Reload(args)) => client::policy_reload(args).await,
        Command::Policy(cmd) => policy::run(cmd),
        Command::Login(args) => client::login(args).await,
        Command::Logout(args) => client::logout(args).await,
        Command::Sessions(args) => client::sessions(args).await,
        Command::Forge(cmd) => client::forge(cmd).await,
        Command::Whoami(args) => client::whoami(args).await,
        Command::Request(args) => client::request(args).await,
        Command::Approve(args) => client::approve(args).await,
        Command::Deny(args) => client::deny(args).await,
        Command::Revoke(args) => client::revoke(args).await,
        Command::Extend(args) => client::extend(args).await,
        Command::Grants(args) => client::grants(args).await,
        Command::Incidents(args) => client::incidents(args).await,
        Command::Notifications(args) => client::notifications(args).await,
        Command::Review(cmd) => client::review(cmd).await,
        Command::Drill { command: Some(cli::DrillCommand::History { server, limit, json }), .. } => {
            drill::history::run(server, json, limit).await
        }
        Command::Drill {
            server: Some(server), scopes, duration, repo, gate, approver_credentials, wait, json, ..
        } => {
            let live = drill::live::Live { server, scopes, duration, repo, gate, approver: approver_credentials, wait };
            drill::live::run(live, json).await
        }
        Command::Drill { json, keep, fault, .. } => drill::run(json, fault, keep, &datadir::SystemClock).await,
        Command::Drift { record: true, json, client, .. } => drift::record(client, json).await,
        Command::Drift { checkpoint, key, json, client, .. } => drift::run(client, checkpoint, key, json).await,
        Command::Stats { since, json, client } => client::stats(since, json, client).await,
        Command::Show(args) => client::show(args).await,
        Command::Token(args) => client::token(args).await,
        Command::Grant(cmd) => client::grant(cmd).await,
        Command::Git(cmd) => git::run(cmd).await,
        Command::Spool(cli::SpoolCommand::Flush { repo: Some(repo), json, .. }) => git::flush(&repo, json).await,
        Command::Spool(cli::SpoolCommand::Flush { dir, ci, json, .. }) => ci::flush(dir, ci, json).await,
        Command::Ci(cmd) => ci::run(cmd).await,
        Command::Bench(cmd) => bench::run(cmd).await,
        Command::Debug(cmd) => debug::run(&loc, cmd).await,
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "breakglass", &mut std::io::stdout());
            Ok(())
        }
    }
}

pub fn print_json<T: serde::Serialize>(value: &T) {
    // A reader that went away (`| head`) is not an error worth a panic.
    let text = serde_json::to_string_pretty(value).expect("JSON output serialises");
    let _ = writeln!(std::io::stdout(), "{text}");
}
