//! `breakglass serve` and the server half of `breakglass init`: first-run
//! setup, the bootstrap admin token, then the HTTP server until SIGINT or
//! SIGTERM; SIGHUP reloads the policy and principals.
//!
//! Security: what `serve` prints is what operators and scripts act on, so it
//! announces only what is true. The signal handlers are installed before
//! anything is printed, and "listening on" comes last: it means a SIGHUP reloads
//! and a SIGTERM stops cleanly, never that a signal's default action (ending
//! the process) still applies. The TLS private key is refused when group or
//! others may read it, as every other secret file is (see datadir.rs).

use std::sync::Arc;

use breakglass_core::api::CreateApiToken;
use breakglass_core::login::ChallengeKey;
use breakglass_core::time::Clock;
use breakglass_core::token::TokenSigner;
use breakglass_server::OffsetClock;
use breakglass_server::http::{AppState, router};
use breakglass_server::service::{Keys, Service, ServiceConfig};
use breakglass_store::ObjectFilter;
use breakglass_store::ledger::Ledger;

use crate::cli::ServeArgs;
use crate::datadir::{DataDir, GRANT_KEY_FILE, LOGIN_KEY_FILE, Location, SystemClock};
use crate::error::{CliResult, bad_input, internal};

/// The URL clients use: the configured public URL, else derived from the
/// listen address.
pub fn public_url(dir: &DataDir, listen: &str) -> String {
    let s = &dir.config.server;
    if !s.public_url.is_empty() {
        return s.public_url.trim_end_matches('/').to_owned();
    }
    format!("{}://{listen}", if s.tls() { "https" } else { "http" })
}

/// Opens the ledger and the grant service over a data directory.
pub async fn open_service(dir: &DataDir, clock: Arc<dyn Clock>, issuer: String) -> CliResult<(Arc<Service>, Ledger)> {
    let ledger = dir.ledger(clock.clone()).await?;
    let store = dir.store(false).await?;
    let keys = Keys {
        token_signer: TokenSigner::from_seed(&dir.key(GRANT_KEY_FILE)?),
        challenge_key: ChallengeKey::from_bytes(dir.key(LOGIN_KEY_FILE)?),
        digester: dir.digester()?,
    };
    let s = &dir.config.server;
    let config = ServiceConfig {
        issuer,
        policy_dir: dir.resolve(&dir.config.policy.dir),
        principals_file: dir.resolve(&dir.config.policy.principals),
        session_ttl_ms: s.session_ttl_ms(),
        pending_ttl_ms: s.pending_ttl_ms(),
        challenge_ttl_ms: s.challenge_ttl_ms(),
        ci: dir.config.ci.to_server()?,
        incidents: dir.config.incidents.to_server()?,
        notify: dir.config.notify.to_server()?,
        review: dir.config.review.to_server()?,
        forges: crate::config::ForgeSection::to_server(&dir.config.forge, &dir.resolve(std::path::Path::new("")))?,
    };
    let service = Service::new(ledger.clone(), store, clock, keys, config)
        .map_err(|problems| bad_input(format!("the policy or principals do not load:\n  {}", problems.join("\n  "))))?;
    Ok((Arc::new(service), ledger))
}

/// Creates the bootstrap admin API token when the database has none; returns
/// the secret, to be printed once.
pub async fn bootstrap_admin(service: &Service) -> CliResult<Option<String>> {
    let existing = service
        .store()
        .objects(breakglass_server::auth::API_TOKEN_KIND, &ObjectFilter { limit: 1, ..ObjectFilter::default() })
        .await?;
    if !existing.is_empty() {
        return Ok(None);
    }
    let req = CreateApiToken { name: "bootstrap-admin".into(), role: "admin".into(), expires_in: None };
    let created = service
        .create_api_token(None, &req)
        .await
        .map_err(|e| internal(format!("cannot create the admin token: {e}")))?;
    Ok(Some(created.token))
}

pub fn print_admin_token(token: &str) {
    println!();
    println!("bootstrap admin API token (shown once; only its hash is stored):");
    println!("  {token}");
    println!("  use it as BREAKGLASS_TOKEN for 'breakglass token create', 'breakglass policy reload', …");
}

pub async fn run(loc: &Location, args: ServeArgs) -> CliResult {
    let (dir, report) = DataDir::init(loc, args.origin).await?;
    let listen = args.listen.unwrap_or_else(|| dir.config.server.listen.clone());
    let addr: std::net::SocketAddr =
        listen.parse().map_err(|_| bad_input(format!("invalid --listen {listen:?}: expected IP:PORT")))?;
    let tls = if dir.config.server.tls() {
        let (cert, key) = (dir.resolve(&dir.config.server.tls_cert), dir.resolve(&dir.config.server.tls_key));
        crate::datadir::check_private_file(&key, "the TLS private key (server.tls_key)")?;
        Some(breakglass_server::listen::tls_config(&cert, &key).map_err(bad_input)?)
    } else {
        None
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| bad_input(format!("cannot listen on {addr}: {e} (hint: pass --listen 127.0.0.1:PORT)")))?;
    let bound = listener.local_addr().map_err(|e| internal(format!("cannot read the bound address: {e}")))?;
    let url = public_url(&dir, &bound.to_string());
    let test_clock = args.unsafe_test_clock.then(|| Arc::new(OffsetClock::default()));
    let clock: Arc<dyn Clock> = match &test_clock {
        Some(c) => c.clone(),
        None => Arc::new(SystemClock),
    };
    let (service, ledger) = open_service(&dir, clock, url.clone()).await?;
    let admin = bootstrap_admin(&service).await?;
    // Before the first line is printed, so that no line (and no signal an
    // operator or a supervisor sends as soon as it sees one) comes before the
    // handlers. Not earlier: until here, SIGINT still interrupts a start that
    // hangs (on an unreachable database, say).
    let signals = Signals::install()?;

    for p in &report.created {
        println!("created   {}", p.display());
    }
    println!("data      {}", dir.root.display());
    println!(
        "database  {}",
        if dir.config.database.url.is_empty() {
            dir.path(crate::datadir::DB_FILE).display().to_string()
        } else {
            breakglass_store::postgres::redact_url(&dir.config.database.url)
        }
    );
    println!("policy    {}", dir.resolve(&dir.config.policy.dir).display());
    println!("principals {}", dir.resolve(&dir.config.policy.principals).display());
    println!("log key   {}", report.verifier_key);
    if let Some(token) = &admin {
        print_admin_token(token);
        println!();
        println!(
            "next: add your SSH public key to {}, then run: breakglass login --server {url} --principal <name>",
            dir.resolve(&dir.config.policy.principals).display()
        );
    }
    if test_clock.is_some() {
        println!("warning: --unsafe-test-clock: an admin can move this server's clock forward; never use it for real");
    }

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let metrics = breakglass_server::metrics_handle();
    if let Some(h) = metrics.clone() {
        tokio::spawn(breakglass_server::metrics_upkeep(h, stop_rx.clone()));
    }
    let state = AppState { service: service.clone(), metrics, test_clock };
    let app = router(state, dir.config.server.max_body_bytes);
    let limits = dir.config.server.connection_limits()?;
    let expiry = tokio::spawn(breakglass_server::expiry::run(service.clone(), stop_rx.clone()));
    let notifier = tokio::spawn(breakglass_server::service::notify::run(service.clone(), stop_rx.clone()));
    let forges = tokio::spawn(breakglass_server::service::forges::run(service.clone(), stop_rx.clone()));
    let drift_every = dir.config.drift.interval()?;
    // Last: the handlers are installed, the listener is bound (connections
    // queue on it until the server below takes them) and every task that
    // serves requests is running. What reacts to the outside world and prints
    // (a reload on SIGHUP, the drift check that runs at start) begins only
    // after, so that its lines never come before this one.
    println!("listening on {url}");
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    let signals = tokio::spawn(signals.handle(service.clone(), stop_tx));
    let drift = drift_every.map(|every| {
        let report = |c: &breakglass_core::api::DriftCheck| {
            println!(
                "drift check: {} finding(s), {} new, {} cleared{}",
                c.findings.len(),
                c.found.len(),
                c.cleared.len(),
                c.not_recorded.as_ref().map_or(String::new(), |e| format!(" (NOT RECORDED: {e})"))
            );
            let _ = std::io::stdout().flush();
        };
        tokio::spawn(breakglass_server::service::drift::run(service.clone(), every, report, stop_rx.clone()))
    });
    let res = breakglass_server::listen::serve(listener, app, tls, limits, stop_rx).await;
    signals.abort();
    let _ = expiry.await;
    let _ = notifier.await;
    let _ = forges.await;
    if let Some(d) = drift {
        let _ = d.await;
    }
    drop(service);
    ledger.shutdown().await;
    res.map_err(|e| internal(format!("the server failed: {e}")))
}

/// The signals `serve` answers, installed (so their default actions no
/// longer apply) before it prints anything; a signal that arrives before
/// [`Signals::handle`] runs is kept and acted on once it does.
#[cfg(unix)]
struct Signals {
    hup: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn install() -> CliResult<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        let one = |kind: SignalKind, name: &str| {
            signal(kind).map_err(|e| internal(format!("cannot install the {name} handler: {e}")))
        };
        Ok(Signals {
            hup: one(SignalKind::hangup(), "SIGHUP")?,
            term: one(SignalKind::terminate(), "SIGTERM")?,
            int: one(SignalKind::interrupt(), "SIGINT")?,
        })
    }

    async fn handle(mut self, service: Arc<Service>, stop: tokio::sync::watch::Sender<bool>) {
        loop {
            tokio::select! {
                _ = self.hup.recv() => match service.reload("SIGHUP").await {
                    Ok(r) => {
                        println!("policy reloaded (SIGHUP): {} policies, {} principals", r.policies, r.principals);
                        use std::io::Write as _;
                        let _ = std::io::stdout().flush();
                    }
                    Err(e) => tracing::error!(error = %e, "policy reload on SIGHUP refused; the old policy stays in force"),
                },
                _ = self.term.recv() => break,
                _ = self.int.recv() => break,
            }
        }
        let _ = stop.send(true);
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn install() -> CliResult<Signals> {
        Ok(Signals)
    }

    async fn handle(self, _service: Arc<Service>, stop: tokio::sync::watch::Sender<bool>) {
        let _ = tokio::signal::ctrl_c().await;
        let _ = stop.send(true);
    }
}
