//! End-to-end tests of the `breakglass` binary: the real executable, real
//! SQLite files, real processes killed with SIGKILL.

mod audit;
mod ci;
mod crash;
mod drift;
mod drill;
mod forge;
mod git;
mod git_transport;
mod incidents;
mod policy;
mod reviews;
#[cfg(unix)]
mod security_files;
mod security_hooks;
mod served;
mod server;
mod sessions;
mod support;
