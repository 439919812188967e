//! Test helpers, written once for every crate's tests (a dev-dependency
//! only; never published). Each module is one helper that tests used to
//! write for themselves:
//!
//! - [`clock`]: a clock that moves only when a test moves it;
//! - [`pg`]: a fresh PostgreSQL database per test from `BREAKGLASS_TEST_PG_URL`;
//! - [`ssh`]: keys made by `ssh-keygen`, signatures by `ssh-keygen -Y sign`, the SSH wire encoding;
//! - [`git`]: the `git` command in a directory, and a ref's value;
//! - [`files`]: files only their owner may read, data directories;
//! - [`fixtures`]: the incident webhook fixtures, by name;
//! - [`http`]: one raw HTTP/1.1 request, as the bytes go over the wire;
//! - [`serve`]: a `breakglass serve` process, ready once it says "listening on".
//!
//! Helpers panic with what went wrong instead of returning errors: they run
//! only in tests, where a panic is the failure.

pub mod clock;
pub mod files;
pub mod fixtures;
pub mod git;
pub mod http;
pub mod pg;
pub mod serve;
pub mod ssh;
