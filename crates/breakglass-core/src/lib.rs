//! breakglass-core: the parts of breakglass that need no IO and no clock.
//!
//! This crate holds the tamper-evident audit log's mathematics and formats:
//! RFC 9162 Merkle hashing with stored interior hashes ([`tree`]), proof
//! verification ([`proof`]), C2SP signed notes ([`note`]) and checkpoints
//! ([`checkpoint`]), the canonical entry encoding ([`entry`]), the tlog-tiles
//! layout ([`tiles`]) and the `c2sp.org/tlog-proof@v1` format ([`tlog_proof`]).
//!
//! Invariant: nothing in here reads the clock, the environment, the network or
//! the file system. Time is a parameter ([`time::Timestamp`]).

pub mod api;
pub mod bundle;
pub mod checkpoint;
pub mod entry;
#[doc(hidden)]
pub mod fuzz;
pub mod grant;
pub mod hash;
pub mod incident;
pub mod json;
pub mod login;
pub mod note;
pub mod notify;
pub mod oidc;
pub mod policy;
pub mod principals;
pub mod proof;
pub mod push_input;
pub mod report;
pub mod review;
pub mod scope;
pub mod sshsig;
pub mod text;
pub mod tiles;
pub mod time;
pub mod tlog_proof;
pub mod token;
pub mod tree;

pub use hash::Hash;
