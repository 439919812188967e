//! breakglass-core: the access domain of breakglass, with no IO and no clock.
//!
//! Who may break glass and how: scopes and capabilities ([`scope`]), the
//! grant state machine ([`grant`]), Cedar policy with explained decisions
//! ([`policy`]), the principals file ([`principals`]), the credentials people
//! and machines prove themselves with (SSH signatures in [`sshsig`], login
//! challenges in [`login`], CI OIDC tokens in [`oidc`], grant tokens in
//! [`token`]), incident webhooks ([`incident`]), notifications ([`notify`]),
//! reviews, their reports and evidence bundles ([`review`], [`report`],
//! [`bundle`]), what a push tells the hooks ([`push_input`]), the HTTP API's
//! bodies ([`api`]), and the strict reading of what people and webhooks send
//! ([`json`], [`text`]).
//!
//! The audit log underneath is not here: its Merkle tree, proofs, signed
//! notes, checkpoints and tiles are the domain-free `breakglass_tlog` crate,
//! used directly; the entries and their timestamps are `breakglass_entry`,
//! re-exported as [`entry`] and [`time`] because every part of the domain
//! writes entries.
//!
//! Invariant: nothing in here reads the clock, the environment, the network or
//! the file system. Time is a parameter ([`time::Timestamp`]).

pub use breakglass_entry::{entry, time};

pub mod api;
pub mod bundle;
pub mod forge;
#[doc(hidden)]
pub mod fuzz;
pub mod grant;
pub mod incident;
pub mod json;
pub mod login;
pub mod notify;
pub mod oidc;
pub mod policy;
pub mod principals;
pub mod push_input;
pub mod report;
pub mod review;
pub mod scope;
pub mod signed;
pub mod sshsig;
pub mod text;
pub mod token;
