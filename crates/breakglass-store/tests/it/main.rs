//! Integration tests of breakglass-store, in one binary: the ledger
//! (sequencing, group commit, two writers on one database), reopening and
//! sink repair, tamper detection by `verify_log`, every log-tampering attack
//! of the security campaign (`security_log`), and the tlog-tiles export.
//! Every log is SQLite in a temp dir; time is a clock the tests move.

mod conformance;
mod export;
mod harness;
mod ledger;
mod reopen;
mod security_log;
mod tamper;
