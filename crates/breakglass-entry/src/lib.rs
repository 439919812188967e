//! breakglass-entry: what one audit log entry is, and the time it carries.
//!
//! - [`entry`]: the canonical entry encoding (one encoding per entry, checked
//!   on decode), the 65,535-byte limit, drafts the sequencer turns into
//!   entries, and [`entry::SecretDigester`], which stands in for secrets.
//! - [`time`]: [`time::Timestamp`] and the [`time::Clock`] trait.
//!
//! This is the part of the domain that storage needs: the store sequences,
//! hashes and copies entries without knowing grants or policy, so it depends
//! on this crate and on breakglass-tlog, not on breakglass-core (which
//! re-exports both modules as `breakglass_core::entry` and
//! `breakglass_core::time`). Nothing here does IO or reads the clock.

pub mod entry;
pub mod time;
