//! End-to-end tests of the `breakglass` binary: the real executable, real
//! SQLite files, real processes killed with SIGKILL.

mod audit;
mod crash;
mod git;
mod policy;
mod served;
mod server;
mod support;
