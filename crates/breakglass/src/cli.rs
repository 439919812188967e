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
    /// Create the data directory, the log signing key, the configuration and the database.
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
        #[arg(long, value_name = "FILE")]
        since: Option<PathBuf>,
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
    /// Write the log in the C2SP tlog-tiles layout, incrementally (existing files are never rewritten).
    #[command(after_help = EXIT_CODES)]
    Export {
        /// The output directory.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
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
