//! breakglass-tlog: the primitives of a transparency log, with no knowledge
//! of what is logged.
//!
//! - [`hash`]: RFC 9162 (RFC 6962) leaf and node hashing, the 32-byte [`struct@Hash`].
//! - [`tree`]: stored interior hashes at dense indexes (as Go's sumdb `tlog`),
//!   the [`tree::Frontier`] an appender keeps, tree hashes and inclusion and
//!   consistency proofs computed from stored hashes.
//! - [`proof`]: RFC 9162 inclusion and consistency proof verification.
//! - [`note`]: C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys.
//! - [`checkpoint`]: C2SP tlog-checkpoint bodies, signed and opened as notes.
//! - [`tiles`]: the C2SP tlog-tiles layout: tile paths, tile sets, entry bundles.
//! - [`tlog_proof`]: the `c2sp.org/tlog-proof@v1` offline proof format.
//!
//! Invariant: this crate knows nothing of grants, policy or breakglass's log
//! entries. A log entry is opaque bytes here; what the bytes mean, how they
//! are encoded and who may write them belongs to the crates above it. Like
//! the domain core, it does no IO and never reads the clock, so any log built
//! on RFC 9162 and the C2SP formats could use it as it is.

pub mod checkpoint;
pub mod hash;
pub mod note;
pub mod proof;
pub mod tiles;
pub mod tlog_proof;
pub mod tree;

pub use hash::Hash;
