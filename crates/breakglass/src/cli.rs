//! The command line: every subcommand, its flags and its help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  a check failed (tampering found, a proof or signature did not verify)
  2  usage error or invalid input
  3  not found or not set up (missing data directory, no such entry, empty log)
  4  internal or storage failure";

#[derive(Debug, Parser)]
#[command(
    name = "breakglass",
    version,
    about = "Emergency access for Git and CI/CD: time-bound, policy-approved, and recorded in a tamper-evident log.",
    after_help = EXIT_CODES
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// The data directory (database, keys, configuration, log sink).
    /// Default: $XDG_DATA_HOME/breakglass or ~/.local/share/breakglass.
    #[arg(long, global = true, env = "BREAKGLASS_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL database URL (postgres://…), for several servers over one database.
    /// Default: SQLite in the data directory. Overrides database.url in the configuration.
    #[arg(long, global = true, env = "BREAKGLASS_DATABASE_URL", value_name = "URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// The configuration file. Default: breakglass.toml in the data directory.
    #[arg(long, global = true, env = "BREAKGLASS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the breakglass server (HTTP API on 127.0.0.1:7468 by default). On first run it sets up
    /// the data directory, keys, an example policy and principals, and prints a bootstrap admin token.
    #[command(after_help = EXIT_CODES)]
    Serve(ServeArgs),
    /// Create the data directory, the signing keys, the configuration, an example policy and
    /// principals file, the database and a bootstrap admin API token, without starting the server.
    #[command(after_help = EXIT_CODES)]
    Init(InitArgs),
    /// Inspect, prove, verify and export the tamper-evident audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Check, test and explain the Cedar policies that decide who may break glass.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Run benchmarks and print their figures.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Log in to a breakglass server with an SSH key: sign the server's challenge with
    /// `ssh-keygen -Y sign` and store the session token in the credentials file.
    #[command(after_help = CLIENT_HELP)]
    Login(LoginArgs),
    /// Forget the session stored for the server (the credentials file's entry for --server).
    #[command(after_help = CLIENT_HELP)]
    Logout(LogoutArgs),
    /// List your login sessions, or end one (admins: anyone's, or all of a principal's at once).
    #[command(after_help = CLIENT_HELP)]
    Sessions(SessionsArgs),
    /// Show who the server thinks you are: name, kind of token, role and groups.
    #[command(after_help = CLIENT_HELP)]
    Whoami(WhoamiArgs),
    /// Hosted forges (GitHub): install the protection breakglass owns on a managed repository,
    /// or show each repository's protection and who holds a bypass now.
    #[command(subcommand)]
    Forge(ForgeCommand),
    /// Break glass: ask for a time-bound grant of capabilities on scopes. It is active at once
    /// when policy auto-approves it, else pending until enough others approve it.
    #[command(after_help = CLIENT_HELP)]
    Request(RequestArgs),
    /// Approve someone else's pending grant.
    #[command(after_help = CLIENT_HELP)]
    Approve(ApproveArgs),
    /// Refuse someone else's pending grant.
    #[command(after_help = CLIENT_HELP)]
    Deny(ReasonArgs),
    /// End a pending or active grant now (the grantee, an approver or an admin).
    #[command(after_help = CLIENT_HELP)]
    Revoke(ReasonArgs),
    /// Extend your active grant, with a new reason; never past the policy maximum.
    #[command(after_help = CLIENT_HELP)]
    Extend(ExtendArgs),
    /// List grants: id, principal, state, scopes, capabilities and expiry.
    #[command(after_help = CLIENT_HELP)]
    Grants(GrantsArgs),
    /// Show one grant: every field, its approvals, extensions and audit log indexes.
    #[command(after_help = CLIENT_HELP)]
    Show(ShowArgs),
    /// Print the signed token of an active grant (`breakglass token ID`), or manage API tokens
    /// (`breakglass token create|list|revoke`).
    #[command(args_conflicts_with_subcommands = true, arg_required_else_help = true, after_help = TOKEN_HELP)]
    Token(TokenArgs),
    /// Work with grant tokens: `grant verify` checks one offline.
    #[command(subcommand)]
    Grant(GrantCommand),
    /// Protect Git refs: install the server-side hooks into bare repositories, and the
    /// `git shell` wrapper for authorized_keys.
    #[command(subcommand)]
    Git(GitCommand),
    /// Deliver events that hooks spooled while the server was unreachable.
    #[command(subcommand)]
    Spool(SpoolCommand),
    /// Pipeline steps that recognise break-glass mode: status, gates, deployments.
    #[command(subcommand)]
    Ci(CiCommand),
    /// Incidents the server learned from PagerDuty, Opsgenie, Alertmanager or the generic form:
    /// `breakglass incidents [--open]`, `breakglass incidents show ID`.
    #[command(args_conflicts_with_subcommands = true, after_help = CLIENT_HELP)]
    Incidents(IncidentsArgs),
    /// Post-event reviews: every grant that was active gets one when it ends.
    /// `review list [--open|--overdue]`, `review show ID` (the timeline), `review approve|flag ID --notes …`.
    #[command(subcommand)]
    Review(ReviewCommand),
    /// Rehearse a whole break-glass event in a sandbox made for it (a scratch server with a test
    /// clock, a repository with hooks, a simulated incident) and time every step: request approved
    /// by the incident, token, protected push, CI gate relaxed, expiry, push refused again, review
    /// opened, log verified. Fails (exit 1) on the first step that does not work.
    ///
    /// With --server URL, the same steps run against a live server, as the logged-in principal,
    /// on drill scopes only (repository or project breakglass-drill[/...]), every log entry marked
    /// as a drill; the grant is revoked instead of waiting for its expiry, and the result is
    /// stored on the server. `breakglass drill history` shows past drills' timings.
    #[command(after_help = EXIT_CODES, args_conflicts_with_subcommands = true)]
    Drill {
        #[command(subcommand)]
        command: Option<DrillCommand>,
        #[arg(long)]
        json: bool,
        /// Keep the sandbox directory (printed) to look at afterwards.
        #[arg(long, conflicts_with = "server")]
        keep: bool,
        /// Break the sandbox on purpose, to see the drill catch it.
        #[arg(long, value_enum, value_name = "FAULT", conflicts_with = "server")]
        fault: Option<crate::drill::Fault>,
        /// Rehearse on this live server instead of a sandbox (needs `breakglass login` there).
        #[arg(long, value_name = "URL")]
        server: Option<String>,
        /// With --server: the drill scopes to request (repeatable).
        #[arg(long = "scope", value_name = "SCOPE", requires = "server",
              default_value = crate::drill::live::DEFAULT_SCOPE)]
        scopes: Vec<String>,
        /// With --server: how long the drill grant is requested for (it is revoked at the end).
        #[arg(long = "for", value_name = "DURATION", default_value = "10m", requires = "server")]
        duration: String,
        /// With --server: a drill repository (path or URL) whose hooks protect the git scope's ref;
        /// the drill pushes a tagged empty commit to it and checks the push is refused afterwards.
        #[arg(long, value_name = "REPO", requires = "server")]
        repo: Option<String>,
        /// With --server: a gate to skip under the drill grant (needs a pipeline: scope).
        #[arg(long, value_name = "NAME", requires = "server")]
        gate: Option<String>,
        /// With --server: a second principal's credentials file, to approve the request when
        /// policy does not approve it at once (otherwise the drill waits for a person).
        #[arg(long, value_name = "FILE", requires = "server")]
        approver_credentials: Option<PathBuf>,
        /// With --server: how long to wait for a person to approve.
        #[arg(long, value_name = "DURATION", default_value = "10m", requires = "server")]
        wait: String,
    },
    /// Find drift: grants lagging or contradicting their log, standing backdoors in policy,
    /// registered repositories on this host whose hooks are missing or changed, whose push
    /// options are off or whose spool holds undelivered events, protected refs whose value no
    /// recorded update produced, and (with --checkpoint) a log that no longer extends a saved
    /// checkpoint. With --record, the server runs its periodic check now instead and records
    /// what changed in the log. Exit 0: no drift; 1: drift found (each finding says what to do).
    #[command(after_help = CLIENT_HELP)]
    Drift {
        /// Run the server's periodic drift check now (admin): its own findings and those of the
        /// repositories on its host; new ones become drift.found entries and notifications,
        /// gone ones drift.cleared.
        #[arg(long, conflicts_with_all = ["checkpoint", "key"])]
        record: bool,
        /// A signed checkpoint saved earlier (`breakglass audit checkpoint`): the log must still extend it.
        #[arg(long, value_name = "FILE", requires = "key")]
        checkpoint: Option<PathBuf>,
        /// The log's verifier key (or a file holding it), for --checkpoint.
        #[arg(long, value_name = "VKEY")]
        key: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Friction figures: time from request to active, how long grants last, who breaks glass
    /// where and how often, reviews outstanding and overdue.
    #[command(after_help = CLIENT_HELP)]
    Stats {
        /// Only grants requested since this date (2026-11-01) or time (RFC 3339).
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Notifications and their delivery: `breakglass notifications [--status failed]`,
    /// `breakglass notifications retry ID` (admin).
    #[command(args_conflicts_with_subcommands = true, after_help = CLIENT_HELP)]
    Notifications(NotificationsArgs),
    /// Print shell completions for bash, zsh, fish, elvish or powershell.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Tools for tests and operators debugging a data directory.
    #[command(subcommand, hide = true)]
    Debug(DebugCommand),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The log's origin (checkpoint origin line and signing key name), e.g. example.com/breakglass.
    /// Default: breakglass.local/<hostname>.
    #[arg(long)]
    pub origin: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on. Default: server.listen in the configuration
    /// (BREAKGLASS_SERVER_LISTEN), else 127.0.0.1:7468. Port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// The log's origin, used when the data directory is created on first run.
    #[arg(long)]
    pub origin: Option<String>,
    /// Let an admin move this server's clock forward (POST /v1/debug/clock), for tests and drills.
    #[arg(long, hide = true)]
    pub unsafe_test_clock: bool,
}

#[derive(Debug, Subcommand)]
pub enum GitCommand {
    /// Install the pre-receive and post-receive hooks into a bare repository (thin scripts that
    /// exec this binary), set receive.advertisePushOptions, write the hook settings
    /// (breakglass.toml in the repository) and register the repository with the server.
    /// Idempotent. A hook already there is kept (renamed *.breakglass-chained) and runs first.
    #[command(after_help = EXIT_CODES)]
    Install(Box<GitInstallArgs>),
    /// Remove breakglass's hooks and settings from a bare repository, restoring chained hooks.
    #[command(after_help = EXIT_CODES)]
    Uninstall {
        /// The bare repository.
        #[arg(long, value_name = "PATH")]
        repo: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// For an authorized_keys line: command="breakglass git shell alice",restrict ssh-ed25519 …
    /// Runs git-shell with the client's git command and BREAKGLASS_USER=alice, the identity
    /// the hooks trust.
    #[command(after_help = EXIT_CODES)]
    Shell {
        /// The principal this key belongs to.
        user: String,
    },
    /// The hooks themselves (what the installed scripts exec).
    #[command(hide = true)]
    Hook {
        /// pre-receive or post-receive.
        #[arg(value_parser = ["pre-receive", "post-receive"])]
        name: String,
        /// Arguments git passes on.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct GitInstallArgs {
    /// The bare repository.
    #[arg(long, value_name = "PATH")]
    pub repo: PathBuf,
    /// The repository's name in scopes, git:<name>@<ref>, e.g. payments/api.
    #[arg(long)]
    pub name: String,
    /// A protected ref pattern: an exact ref, or a prefix ending in * (repeatable).
    #[arg(long = "protect", value_name = "PATTERN", required = true)]
    pub protected: Vec<String>,
    /// A principal who may update protected refs normally (fast-forward or create), e.g. a merge bot (repeatable).
    #[arg(long = "updater", value_name = "NAME")]
    pub updaters: Vec<String>,
    /// The breakglass server the hooks ask and report to.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// A file holding a `service` API token for the server (keep it 0600, readable by the Git server's user).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Read the API token from standard input and write it to --token-file, created 0600
    /// (e.g. `breakglass token create --name git-hooks --role service | breakglass git install … --token-stdin`).
    #[arg(long, requires = "token_file")]
    pub token_stdin: bool,
    /// The grant-token public keys to verify `-o breakglass=<token>` offline (the server's grant-token.jwks.json).
    #[arg(long, value_name = "FILE")]
    pub jwks: Option<PathBuf>,
    /// The issuer grant tokens must name. Default: the server URL.
    #[arg(long)]
    pub issuer: Option<String>,
    /// Where undelivered events wait. Default: <repo>/breakglass-spool.
    #[arg(long, value_name = "DIR")]
    pub spool: Option<PathBuf>,
    /// An environment variable naming the pusher, in order of trust (repeatable). Default:
    /// BREAKGLASS_USER, GL_USER, GITEA_PUSHER_NAME, GL_USERNAME, GITHUB_USER_LOGIN.
    #[arg(long = "identity", value_name = "VAR")]
    pub identity: Vec<String>,
    /// The most new commits one protected update may bring.
    #[arg(long, default_value_t = 10_000)]
    pub max_commits: usize,
    /// How long the hooks wait for the server, in milliseconds.
    #[arg(long, default_value_t = 3000)]
    pub timeout_ms: u64,
    /// The binary the hook scripts exec. Default: this one.
    #[arg(long, value_name = "PATH")]
    pub binary: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum DrillCommand {
    /// Past drills with their times, newest first: a server's (with --server), else the sandbox
    /// drills run on this machine.
    History {
        /// The server whose stored drills to list.
        #[arg(long, value_name = "URL")]
        server: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SpoolCommand {
    /// Deliver spooled events to the server (idempotent: none is recorded twice): a repository's
    /// (with its hook settings), or a CI spool directory (with --dir, --server and BREAKGLASS_TOKEN
    /// or the job's OIDC ID token).
    #[command(after_help = EXIT_CODES)]
    Flush {
        /// The bare repository whose hook settings (server, token, spool) to use.
        #[arg(long, value_name = "PATH", conflicts_with = "dir", required_unless_present = "dir")]
        repo: Option<PathBuf>,
        /// A spool directory (as `breakglass ci` writes).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        #[command(flatten)]
        ci: CiArgs,
        #[arg(long)]
        json: bool,
    },
}

/// How a CI step reaches the server and proves who it is.
#[derive(Debug, Clone, Args)]
pub struct CiArgs {
    /// The breakglass server.
    #[arg(long, env = "BREAKGLASS_SERVER", default_value = "http://127.0.0.1:7468", value_name = "URL")]
    pub server: String,
    /// The audience to request the job's OIDC ID token for (GitHub Actions).
    #[arg(long, env = "BREAKGLASS_OIDC_AUDIENCE", default_value = "breakglass")]
    pub audience: String,
    /// The variable holding the job's OIDC ID token (GitLab: the name under `id_tokens`).
    #[arg(long, env = "BREAKGLASS_OIDC_TOKEN_VAR", default_value = "BREAKGLASS_ID_TOKEN", value_name = "VAR")]
    pub oidc_token_var: String,
    /// With a service API token in BREAKGLASS_TOKEN: whose grants count.
    #[arg(long, env = "BREAKGLASS_PRINCIPAL")]
    pub principal: Option<String>,
    /// The pinned grant-token public keys (the server's grant-token.jwks.json), to verify a grant
    /// token in BREAKGLASS_TOKEN offline when the server is unreachable.
    #[arg(long, env = "BREAKGLASS_GRANT_KEYS", value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// The issuer grant tokens must name. Default: the server URL.
    #[arg(long, env = "BREAKGLASS_ISSUER")]
    pub issuer: Option<String>,
    /// Where events wait when the server is unreachable.
    #[arg(long, env = "BREAKGLASS_SPOOL", value_name = "DIR")]
    pub spool: Option<PathBuf>,
    /// How long to wait for the server, in milliseconds.
    #[arg(long, env = "BREAKGLASS_TIMEOUT_MS", default_value_t = 5000)]
    pub timeout_ms: u64,
}

const CI_HELP: &str = "\
Credentials, first found wins:
  BREAKGLASS_TOKEN    an API token (bgk_…), or a grant token (used offline when the server is unreachable)
  the job's OIDC ID token: GitHub Actions (ACTIONS_ID_TOKEN_REQUEST_URL, needs `permissions: id-token: write`),
                      or the variable --oidc-token-var names (GitLab `id_tokens`)
Without a server answer and without a grant token, the job runs in normal mode: every gate counts.
BREAKGLASS_NEVER_SKIP=a,b names gates never relaxed offline (the server applies policy online).

Exit codes: 0 success (a skipped or advisory gate included); a failing gate that counts exits with the
gate's own code; 1 refused (identity token or grant token not accepted); 2 bad input; 4 the server failed.";

#[derive(Debug, Subcommand)]
pub enum CiCommand {
    /// Is break-glass mode active for this job? Prints the grant, grantee, reason, expiry and relaxations;
    /// on GitHub Actions writes step outputs and a job summary, on GitLab a dotenv file.
    #[command(after_help = CI_HELP)]
    Status {
        #[command(flatten)]
        args: CiArgs,
        /// The job's scope: pipeline:<project>/<stage>[@<environment>].
        #[arg(long)]
        scope: String,
        /// Also say what happens to this gate.
        #[arg(long)]
        gate: Option<String>,
        /// Write the GitLab dotenv file here (default on GitLab: breakglass.env).
        #[arg(long, value_name = "FILE")]
        dotenv: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Run a gate: normally the command runs and its exit code stands; under a grant with
    /// skip-gate:NAME it does not run; with advisory-gate:NAME a failure does not fail the job.
    /// Never-skippable gates always run and count. Every outcome is logged.
    #[command(after_help = CI_HELP)]
    Gate {
        #[command(flatten)]
        args: CiArgs,
        /// The gate's name, as in policy (skip-gate:NAME).
        name: String,
        #[arg(long)]
        scope: String,
        #[arg(long)]
        json: bool,
        /// The gate command and its arguments, after --.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Record something a pipeline did, bound to the active grant.
    #[command(subcommand)]
    Record(CiRecordCommand),
}

#[derive(Debug, Subcommand)]
pub enum CiRecordCommand {
    /// Record a deployment in the audit log (bound to the grant when break-glass mode is active).
    #[command(after_help = CI_HELP)]
    Deploy {
        #[command(flatten)]
        args: CiArgs,
        #[arg(long)]
        scope: String,
        /// The deployed commit (full id).
        #[arg(long)]
        commit: String,
        /// The deployed artifact's digest, sha256:<hex>.
        #[arg(long)]
        artifact: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print the log's verifier key (name+keyid+base64 key), for auditors and signed-note verifiers.
    #[command(after_help = EXIT_CODES)]
    Key {
        #[arg(long)]
        json: bool,
    },
    /// Print the latest signed checkpoint, byte for byte as the C2SP signed note.
    #[command(after_help = EXIT_CODES)]
    Checkpoint {
        /// Print JSON (size, root, note) instead of the note.
        #[arg(long)]
        json: bool,
    },
    /// Print one entry.
    #[command(after_help = EXIT_CODES)]
    Show {
        /// The entry's index.
        index: u64,
        /// Print the exact bytes that were hashed, and nothing else.
        #[arg(long, conflicts_with = "json")]
        raw: bool,
        #[arg(long)]
        json: bool,
    },
    /// Print the latest entries.
    #[command(after_help = EXIT_CODES)]
    Tail {
        /// How many entries.
        #[arg(short = 'n', long, default_value_t = 10)]
        lines: u64,
        #[arg(long)]
        json: bool,
    },
    /// Write a c2sp.org/tlog-proof@v1 inclusion proof of an entry against the latest checkpoint.
    #[command(after_help = EXIT_CODES)]
    Prove {
        /// The entry's index.
        index: u64,
        /// Write the proof to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Also write the entry's exact bytes to this file (for verify-proof --entry).
        #[arg(long, value_name = "FILE")]
        entry_out: Option<PathBuf>,
        /// Print JSON (index, size, proof hashes, checkpoint, the proof text, the entry) instead of the proof.
        #[arg(long, conflicts_with = "out")]
        json: bool,
    },
    /// Check a tlog-proof offline: the checkpoint's signature and the entry's inclusion. Needs no data directory.
    #[command(name = "verify-proof", after_help = EXIT_CODES)]
    VerifyProof {
        /// The proof file.
        proof: PathBuf,
        /// The file holding the entry's exact bytes.
        #[arg(long, value_name = "FILE")]
        entry: PathBuf,
        /// The log's verifier key, or a file holding it.
        #[arg(long, value_name = "VKEY")]
        key: String,
        /// The expected checkpoint origin. Default: the key's name.
        #[arg(long)]
        origin: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Recompute the whole tree from the stored entries and check every checkpoint, the head and the sink.
    #[command(after_help = EXIT_CODES)]
    Verify {
        /// A signed checkpoint saved earlier: the log must still extend it.
        #[arg(long, value_name = "FILE", conflicts_with = "report")]
        since: Option<PathBuf>,
        /// Verify a review report (`breakglass review export`) offline instead of the log: every
        /// entry proven against the signed checkpoint, none missing or added, the text unedited.
        #[arg(long, value_name = "FILE", conflicts_with = "bundle")]
        report: Option<PathBuf>,
        /// Verify an evidence bundle (`audit export --bundle`) offline instead of the log.
        #[arg(long, value_name = "FILE")]
        bundle: Option<PathBuf>,
        /// Trust this verifier key (or file) instead of the data directory's own key.
        #[arg(long, value_name = "VKEY")]
        key: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Print the keyed digest (hmac-sha256) of a secret read from standard input, to find it in the log.
    /// Entries never hold secrets in clear; they hold this digest.
    #[command(after_help = EXIT_CODES)]
    Digest {
        /// What kind of secret it is, as recorded in the entry (for example api-token).
        #[arg(long)]
        purpose: String,
        #[arg(long)]
        json: bool,
    },
    /// Write the log in the C2SP tlog-tiles layout, incrementally (existing files are never
    /// rewritten); or, with --bundle, an evidence bundle of a time range for auditors.
    #[command(after_help = EXIT_CODES)]
    Export {
        /// The output directory (tlog-tiles).
        #[arg(long, value_name = "DIR", required_unless_present = "bundle", conflicts_with = "bundle")]
        out: Option<PathBuf>,
        /// Write an evidence bundle: every entry from --from to --to with its inclusion proof and
        /// the entries fencing the range, verifiable offline with `audit verify --bundle`.
        #[arg(long, value_name = "FILE", requires_all = ["from", "to"])]
        bundle: Option<PathBuf>,
        /// The range's start: a date (2026-11-01, from its first millisecond, UTC) or RFC 3339.
        #[arg(long, value_name = "DATE")]
        from: Option<String>,
        /// The range's end: a date (its last millisecond, UTC) or RFC 3339.
        #[arg(long, value_name = "DATE")]
        to: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Parse every *.cedar file in a directory and validate it strictly against the breakglass schema.
    /// Prints every problem, with its file and position; nothing is half-loaded.
    #[command(after_help = EXIT_CODES)]
    Check {
        /// The policy directory.
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Run a test table (TOML, [[case]] entries with an expected allow or deny) against the policies.
    #[command(after_help = EXIT_CODES)]
    Test {
        /// The test table.
        file: PathBuf,
        /// The policy directory. Default: the test table's directory.
        #[arg(long, value_name = "DIR")]
        policies: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Ask the server to re-read its policy directory. The new policies replace the old ones only
    /// if every file parses and validates; otherwise the server keeps the old ones and this prints why.
    #[command(after_help = CLIENT_HELP)]
    Reload(PolicyReloadArgs),
    /// Show what the policies decide for one principal, action and scope, and which policies decided it.
    /// With --action request and --cap, decides the whole request: every scope and capability,
    /// auto-approval and the grant's terms.
    #[command(after_help = EXIT_CODES)]
    Explain(Box<PolicyExplainArgs>),
}

#[derive(Debug, Args)]
pub struct PolicyExplainArgs {
    /// The policy directory.
    #[arg(long, value_name = "DIR")]
    pub policies: PathBuf,
    /// Who acts.
    #[arg(long)]
    pub principal: String,
    /// A group the principal is in (repeatable).
    #[arg(long = "group", value_name = "GROUP")]
    pub groups: Vec<String>,
    /// request, auto-approve, approve, review, push, force-push, delete, skip-gate, advisory-gate or deploy.
    #[arg(long)]
    pub action: String,
    /// A scope, e.g. git:payments/api@refs/heads/main (repeatable).
    #[arg(long = "scope", value_name = "SCOPE", required = true)]
    pub scopes: Vec<String>,
    /// A capability, e.g. push or skip-gate:tests (repeatable). With a gate action it names the gate.
    #[arg(long = "cap", value_name = "CAPABILITY")]
    pub caps: Vec<String>,
    /// The gate, for skip-gate and advisory-gate without --cap.
    #[arg(long)]
    pub gate: Option<String>,
    /// The grant's duration.
    #[arg(long, default_value = "30m")]
    pub duration: String,
    /// The reason given.
    #[arg(long, default_value = "")]
    pub reason: String,
    /// Who requested the grant (approve, review). Default: the principal.
    #[arg(long)]
    pub requester: Option<String>,
    /// The requester's overdue reviews.
    #[arg(long, default_value_t = 0)]
    pub overdue_reviews: u32,
    /// An open incident of this severity (1 is the most severe).
    #[arg(long, value_name = "N")]
    pub incident_severity: Option<i64>,
    /// The incident's status: triggered, acknowledged or resolved.
    #[arg(long, default_value = "triggered", requires = "incident_severity")]
    pub incident_status: String,
    /// The incident's id.
    #[arg(long, default_value = "", requires = "incident_severity")]
    pub incident_id: String,
    /// The requester is one of the incident's responders.
    #[arg(long, requires = "incident_severity")]
    pub responder: bool,
    /// Decide as of this time (RFC 3339). Default: now.
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    #[arg(long)]
    pub json: bool,
}

/// Help shared by the commands that talk to a server.
pub const CLIENT_HELP: &str = "\
Server and authentication:
  The server is --server, else $BREAKGLASS_SERVER, else http://127.0.0.1:7468.
  The bearer token is $BREAKGLASS_TOKEN when it is set (a session or API token), else the
  session `breakglass login` stored for that server in the credentials file:
  $BREAKGLASS_CREDENTIALS, else $XDG_CONFIG_HOME/breakglass/credentials.toml, else
  ~/.config/breakglass/credentials.toml. Tokens are never read from the command line,
  where other users could see them in the process list.

Exit codes:
  0  success
  1  refused or failed a check: not logged in, the token is unknown or expired (HTTP 401),
     not allowed (403), denied by policy, in conflict with the grant's state (409),
     or a grant token that does not verify
  2  usage error or invalid input (HTTP 400, 413, 422); an unsafe credentials file
  3  not found (HTTP 404): no such grant or token; no SSH key or ssh-keygen for login
  4  the server could not be reached, timed out, failed (5xx) or sent a malformed answer";

const TOKEN_HELP: &str = "\
`breakglass token ID` prints the signed token of your active grant ID, and nothing else, so
that `$(breakglass token ID)` works. A first word of create, list or revoke is a subcommand
instead, for API tokens (hooks, CI runners, automation; admin only).

Server and authentication:
  The server is --server, else $BREAKGLASS_SERVER, else http://127.0.0.1:7468.
  The bearer token is $BREAKGLASS_TOKEN when it is set, else the session stored by
  `breakglass login` for that server. Tokens are never read from the command line.

Exit codes: 0 success; 1 refused (401, 403, 409); 2 invalid input (400, 422);
3 not found (404); 4 server unreachable or failing (5xx).";

/// Where the server is. The token comes from the environment or the credentials file, never from argv.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The breakglass server's URL.
    #[arg(long, env = "BREAKGLASS_SERVER", default_value = "http://127.0.0.1:7468", value_name = "URL")]
    pub server: String,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The principal to log in as, as named in the server's principals file.
    #[arg(long)]
    pub principal: String,
    /// The SSH key to sign with: a private key file, or a public key (.pub) whose private half is
    /// in ssh-agent or on a FIDO token. Default: the first of ~/.ssh/id_ed25519, id_ecdsa, id_rsa,
    /// id_ed25519_sk and id_ecdsa_sk that exists.
    #[arg(long, value_name = "PATH")]
    pub key: Option<PathBuf>,
    /// Print JSON (principal, expiry, key fingerprint, server, credentials file; never the token).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// Only forget the local session; do not end it on the server (for a server that cannot be
    /// reached).
    #[arg(long)]
    pub local: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct SessionsArgs {
    #[command(subcommand)]
    pub command: Option<SessionsCommand>,
    /// Admins: list this principal's sessions.
    #[arg(long)]
    pub principal: Option<String>,
    /// Include ended and expired sessions.
    #[arg(long)]
    pub all: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// End a session now, on the server: one by id (yours; an admin's: anyone's), or with
    /// --principal every session of that principal (admin API token only).
    #[command(after_help = CLIENT_HELP)]
    Revoke {
        /// The session's id (from `breakglass sessions`).
        #[arg(required_unless_present = "principal", conflicts_with = "principal")]
        id: Option<String>,
        /// End every session of this principal (admin API token only).
        #[arg(long)]
        principal: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum ForgeCommand {
    /// Check or create the ruleset breakglass owns on a managed repository (one bypass actor:
    /// its team), refuse when other protection would still block a bypass, and record the
    /// protection as the baseline drift compares with (admin API token).
    #[command(after_help = CLIENT_HELP)]
    Install {
        /// The repository's name in scopes, as `[[forge.repo]] name` says.
        #[arg(long)]
        repo: String,
        /// The forge's name (`[[forge]] name`).
        #[arg(long, default_value = "github")]
        forge: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Per managed repository: the protection, whether it is still its baseline, and who holds
    /// a bypass now (and whether a grant covers them).
    #[command(after_help = CLIENT_HELP)]
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Args)]
pub struct WhoamiArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct RequestArgs {
    /// A scope to act on, e.g. git:payments/api@refs/heads/main or
    /// pipeline:payments/api/deploy@production (repeatable).
    #[arg(long = "scope", value_name = "SCOPE", required = true)]
    pub scopes: Vec<String>,
    /// A capability, e.g. push, force-push, delete, deploy, skip-gate:tests (repeatable).
    #[arg(long = "cap", value_name = "CAPABILITY", required = true)]
    pub caps: Vec<String>,
    /// How long the grant lasts once active, e.g. 30m or 1h30m; policy sets the maximum.
    #[arg(long = "for", value_name = "DURATION", default_value = "30m")]
    pub duration: String,
    /// Why you need it; recorded in the audit log and shown to approvers and reviewers.
    #[arg(long)]
    pub reason: String,
    /// The incident this is for (e.g. a PagerDuty incident id); policy may auto-approve for open incidents.
    #[arg(long, value_name = "ID")]
    pub incident: Option<String>,
    /// Print the grant as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The grant id.
    pub id: String,
    /// A comment for the record.
    #[arg(long)]
    pub comment: Option<String>,
    /// Print the grant as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct ReasonArgs {
    /// The grant id.
    pub id: String,
    /// Why; recorded in the audit log.
    #[arg(long)]
    pub reason: String,
    /// Print the grant as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct ExtendArgs {
    /// The grant id.
    pub id: String,
    /// How much longer, e.g. 15m; the total may not pass the policy maximum.
    #[arg(long, value_name = "DURATION")]
    pub by: String,
    /// Why more time is needed; recorded in the audit log.
    #[arg(long)]
    pub reason: String,
    /// Print the grant as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct IncidentsArgs {
    #[command(subcommand)]
    pub command: Option<IncidentsCommand>,
    /// Only incidents not resolved.
    #[arg(long)]
    pub open: bool,
    /// Print JSON ({"incidents": [...]}).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Subcommand)]
pub enum IncidentsCommand {
    /// Show one incident: severity, status, services, responders and the principals they map to.
    Show {
        /// The incident id (`pagerduty:Q1ABCD`, or the provider's id alone).
        id: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReviewCommand {
    /// List reviews, newest first.
    #[command(after_help = CLIENT_HELP)]
    List {
        /// Only reviews not signed off yet.
        #[arg(long)]
        open: bool,
        /// Only reviews past their deadline.
        #[arg(long)]
        overdue: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show a review with the timeline of everything recorded under its grant.
    #[command(after_help = CLIENT_HELP)]
    Show {
        /// The review id (rv_…) or its grant's id (gr_…).
        id: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Write a verifiable report of a review (JSON, Markdown or a self-contained HTML page): every
    /// event with its log entry and inclusion proof. The export is itself logged (its manifest).
    #[command(after_help = CLIENT_HELP)]
    Export {
        /// The review id (rv_…) or its grant's id (gr_…).
        id: String,
        #[arg(long, value_enum, default_value_t = ReportFormat::Html)]
        format: ReportFormat,
        /// Write here instead of standard output.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Sign a review off: what was done under the grant was right.
    #[command(after_help = CLIENT_HELP)]
    Approve(ReviewDecisionArgs),
    /// Sign a review off with concerns that need follow-up.
    #[command(after_help = CLIENT_HELP)]
    Flag(ReviewDecisionArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Json,
    Md,
    Html,
}

#[derive(Debug, Args)]
pub struct ReviewDecisionArgs {
    /// The review id (rv_…) or its grant's id (gr_…).
    pub id: String,
    /// What was checked and what was found (required).
    #[arg(long)]
    pub notes: String,
    /// A lesson learned (repeat for several).
    #[arg(long = "lesson", value_name = "TEXT")]
    pub lessons: Vec<String>,
    /// A follow-up action (repeat for several).
    #[arg(long = "follow-up", value_name = "TEXT")]
    pub follow_ups: Vec<String>,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct NotificationsArgs {
    #[command(subcommand)]
    pub command: Option<NotificationsCommand>,
    /// Only notifications in this state: pending, delivered, failed or skipped.
    #[arg(long, value_name = "STATE")]
    pub status: Option<String>,
    /// Print JSON ({"notifications": [...]}).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Subcommand)]
pub enum NotificationsCommand {
    /// Queue a failed notification again (an admin API token).
    Retry {
        /// The notification id (nt_…).
        id: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Args)]
pub struct GrantsArgs {
    /// Only active grants (with --pending: active and pending ones).
    #[arg(long)]
    pub active: bool,
    /// Only pending grants, waiting for approval (with --active: active and pending ones).
    #[arg(long)]
    pub pending: bool,
    /// Only this principal's grants.
    #[arg(long, value_name = "NAME")]
    pub principal: Option<String>,
    /// Print JSON ({"grants": [...]}).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The grant id.
    pub id: String,
    /// Print the grant as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub command: Option<TokenCommand>,
    /// The id of your active grant whose signed token to print.
    #[arg(value_name = "GRANT_ID")]
    pub id: Option<String>,
    /// Write the token to this file (mode 0600) instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Print JSON (token, key id, expiry) instead of the bare token.
    #[arg(long, conflicts_with = "out")]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ApiTokenRole {
    /// Everything.
    Admin,
    /// Grant status and checks, log reads: for hooks and CI steps.
    Service,
    /// Reads only.
    Reader,
}

impl ApiTokenRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ApiTokenRole::Admin => "admin",
            ApiTokenRole::Service => "service",
            ApiTokenRole::Reader => "reader",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token (admin only). The secret is printed once, on standard output.
    #[command(after_help = CLIENT_HELP)]
    Create {
        /// A name saying what uses the token, e.g. ci-payments.
        #[arg(long)]
        name: String,
        /// What the token may do.
        #[arg(long, value_enum)]
        role: ApiTokenRole,
        /// The token's lifetime, in hours, minutes or seconds (e.g. 720h). Default: the server's.
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<String>,
        /// Print JSON (the secret included) instead of the bare secret.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List API tokens (admin only); never their secrets.
    #[command(after_help = CLIENT_HELP)]
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Revoke an API token (admin only).
    #[command(after_help = CLIENT_HELP)]
    Revoke {
        /// The API token's id (from `token list`).
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum GrantCommand {
    /// Verify a grant token offline: signature, issuer, time window, principal, scope and
    /// capability. With --key nothing goes over the network; without it, the server's public keys
    /// are fetched from its /.well-known/jwks.json (or --jwks-url), which is not offline.
    #[command(after_help = VERIFY_HELP)]
    Verify(Box<GrantVerifyArgs>),
}

const VERIFY_HELP: &str = "\
Exit codes:
  0  the token is valid for the scope and capability (and, with --also-online, still active)
  1  it is not: the reason is printed
  2  usage error or invalid input (a bad scope, capability or key file)
  3  a file was not found
  4  the server could not be reached (fetching keys, or --also-online)";

#[derive(Debug, Args)]
pub struct GrantVerifyArgs {
    /// The grant token, or - to read it from standard input.
    pub token: String,
    /// The concrete scope acted on, e.g. git:payments/api@refs/heads/main.
    #[arg(long, value_name = "SCOPE")]
    pub scope: String,
    /// The capability needed, e.g. push or skip-gate:tests.
    #[arg(long = "cap", value_name = "CAPABILITY")]
    pub cap: String,
    /// The principal acting (for a Git hook, the pusher); the token must belong to them.
    #[arg(long, value_name = "NAME")]
    pub principal: Option<String>,
    /// Trust only the keys in this file: a JWKS, a single JWK, or `ed25519 <base64url key>` lines.
    /// With it, verification is entirely offline.
    #[arg(long, value_name = "FILE", conflicts_with = "jwks_url")]
    pub key: Option<PathBuf>,
    /// Fetch the keys from this JWKS URL (no credentials are sent). Default: the server's
    /// /.well-known/jwks.json.
    #[arg(long, value_name = "URL")]
    pub jwks_url: Option<String>,
    /// The issuer the token must name. Default: the server URL without a trailing slash.
    #[arg(long)]
    pub issuer: Option<String>,
    /// The longest lifetime (exp - nbf) accepted: the policy's maximum grant length.
    #[arg(long, value_name = "DURATION", default_value = "24h")]
    pub max_lifetime: String,
    /// Also ask the server whether the grant is still active, which covers early revocation.
    #[arg(long)]
    pub also_online: bool,
    /// Print JSON: {"valid": true, "claims": {...}} or {"valid": false, "error": "..."}.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct PolicyReloadArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Time the in-process decisions of the grant path: offline grant-token
    /// verification and Cedar policy decisions (the shipped example policy).
    #[command(after_help = EXIT_CODES)]
    Core {
        /// Iterations of each measurement.
        #[arg(long, default_value_t = 20_000)]
        iterations: u32,
        #[arg(long)]
        json: bool,
    },
    /// Append, prove and verify in a scratch data directory, and print the figures.
    #[command(after_help = EXIT_CODES)]
    Ledger(BenchLedgerArgs),
    /// Start a real `breakglass serve` on SQLite in a scratch data directory and
    /// measure it over HTTP: request-to-active latency (auto-approved grants),
    /// grant-status checks per second, and the server's idle memory.
    #[command(after_help = EXIT_CODES)]
    Server(BenchServerArgs),
    /// Start a real `breakglass serve`, install the hooks in a bare repository and
    /// time real `git push`es to it against the same pushes to a repository
    /// without hooks: an unprotected push, a 10-commit and a large protected
    /// push under a grant; and the binary's start-up.
    #[command(after_help = EXIT_CODES)]
    Git(BenchGitArgs),
    /// Time what a pipeline step pays to learn whether break-glass mode is on: OIDC ID-token
    /// verification with the issuer's keys cached (RS256 and ES256, keys generated here), the
    /// `GET /v1/ci/status` round trip against a real `breakglass serve`, and `breakglass ci status`
    /// as a whole process.
    #[command(after_help = EXIT_CODES)]
    Ci(BenchCiArgs),
    /// Start a real `breakglass serve` with the generic incident receiver, record signed
    /// severity-1 incidents naming the benchmark principal, and time its requests from the
    /// client until active (auto-approved because of the incident), and the deliveries.
    #[command(after_help = EXIT_CODES)]
    Incident(BenchIncidentArgs),
}

#[derive(Debug, Args)]
pub struct BenchIncidentArgs {
    /// Signed incident deliveries (each a new open incident) before the requests.
    #[arg(long, default_value_t = 100)]
    pub webhooks: u32,
    /// Grant requests, one after another.
    #[arg(long, default_value_t = 1000)]
    pub requests: u32,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchCiArgs {
    /// In-process verifications of each token.
    #[arg(long, default_value_t = 20_000)]
    pub iterations: u32,
    /// `GET /v1/ci/status` requests in each HTTP scenario.
    #[arg(long, default_value_t = 2000)]
    pub requests: u32,
    /// Runs of `breakglass ci status` with each token.
    #[arg(long, default_value_t = 200)]
    pub runs: u32,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchGitArgs {
    /// Pushes to each repository (with and without hooks, interleaved) in the
    /// unprotected and the 10-commit protected scenarios.
    #[arg(long, default_value_t = 30)]
    pub pushes: u32,
    /// Pushes to each repository in the large protected scenario.
    #[arg(long, default_value_t = 5)]
    pub large_pushes: u32,
    /// Commits in each push of the large protected scenario.
    #[arg(long, default_value_t = 1000)]
    pub large_commits: u32,
    /// Runs of `breakglass --version`, `git --version` and of a hook with nothing to do.
    #[arg(long, default_value_t = 50)]
    pub startup_runs: u32,
    /// Also time each hook inside receive-pack, from git's trace2 events (turned on for
    /// every push of the run, with and without hooks alike).
    #[arg(long)]
    pub breakdown: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchServerArgs {
    /// Grants to request, one after another over one keep-alive connection.
    #[arg(long, default_value_t = 2000)]
    pub requests: u64,
    /// Duration of the status-check phase, in seconds.
    #[arg(long, default_value_t = 5)]
    pub checks_seconds: u64,
    /// Concurrent keep-alive connections in the status-check phase.
    #[arg(long, default_value_t = 32)]
    pub connections: u64,
    /// The HTTP client of the measured phases: `raw`, a minimal HTTP/1.1 client
    /// that takes little CPU from the server, or `library`, the breakglass-client
    /// crate (reqwest) that the CLI, hooks and CI steps use.
    #[arg(long, value_enum, default_value_t = BenchClient::Raw)]
    pub client: BenchClient,
    /// Also run the status-check load on GET /healthz (HTTP only) and GET /v1/whoami
    /// (HTTP and the bearer-token lookup), to see where a status check's time goes.
    #[arg(long)]
    pub breakdown: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchClient {
    Raw,
    Library,
}

#[derive(Debug, Args)]
pub struct BenchLedgerArgs {
    /// Entries to append in the throughput phase (the log's final size, with the latency phase).
    #[arg(long, default_value_t = 1_000_000)]
    pub entries: u64,
    /// Concurrent appenders in the throughput phase.
    #[arg(long, default_value_t = 64)]
    pub appenders: u64,
    /// Target rate (entries/s) of the latency phase.
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// Duration of the latency phase, in seconds.
    #[arg(long, default_value_t = 3)]
    pub rate_seconds: u64,
    /// Inclusion proofs to time.
    #[arg(long, default_value_t = 2000)]
    pub proofs: u64,
    /// Leave out the JSON-lines sink, to see what it costs (not a supported configuration).
    #[arg(long)]
    pub no_sink: bool,
    /// Keep the populated data directory here (it must not exist yet) instead of a temporary one.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum DebugCommand {
    /// Append test entries with several concurrent writers, printing "ack INDEX WRITER SEQ" for each acknowledged one.
    Append {
        /// Entries per writer.
        #[arg(long, default_value_t = 100)]
        count: u64,
        /// Concurrent writers.
        #[arg(long, default_value_t = 1)]
        writers: u64,
        /// A label written into each entry, to tell processes apart.
        #[arg(long, default_value = "debug")]
        label: String,
        /// Pad each entry's data to about this many bytes.
        #[arg(long, default_value_t = 0)]
        pad: usize,
    },
}
