//! The grant service: what the HTTP handlers call. It authenticates
//! callers, asks policy, moves grants through their state machine, and
//! writes every change as log entries together with the new state in one
//! append.
//!
//! The layout, for finding your way:
//! - [`kernel`]: the `Service` itself, callers, errors, settings, the policy
//!   in force, typed state objects, the outbox, ids and the one write path.
//!   It imports no feature.
//! - [`effects`]: the one list of what a grant transition sets off.
//! - one module per feature, each an `impl Service` block over the kernel:
//!   [`grants`], [`authenticate`] (who a bearer token is), [`sessions`] (login and
//!   sessions), [`api_tokens`], [`policy`] (reload), [`events`] (what hooks
//!   and CI steps report, repositories and their refs), [`ci`], [`incidents`],
//!   [`notify`], [`reviews`], [`drift`], [`drills`], [`stats`], [`forges`]
//!   (bypasses on hosted forges).

pub mod api_tokens;
pub mod authenticate;
pub mod ci;
pub mod drift;
pub mod drills;
pub mod effects;
pub mod events;
pub mod forges;
pub mod grants;
pub mod incidents;
pub mod kernel;
pub mod notify;
pub mod policy;
pub mod reviews;
pub mod sessions;
pub mod stats;

pub use kernel::config;
pub use kernel::{
    Caller, CiIdentity, CredentialKind, Keys, Loaded, Result, Service, ServiceConfig, ServiceError, load,
    read_policy_dir,
};
