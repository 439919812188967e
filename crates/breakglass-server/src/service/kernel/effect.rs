//! The shape of the one seam for what a grant change sets off. An
//! [`Effect`] sees every grant transition (requested, approved, activated,
//! extended, revoked, denied, lapsed, expired, ended early; and a change
//! about a grant that leaves it as it is, such as its review falling
//! overdue) and may add entries and state objects to the transition's own
//! append, act once that append is durable, and mark the entries of every
//! append. Which effects run, in which order, is said in one place:
//! `service::effects`.

use breakglass_core::entry::EntryDraft;
use breakglass_core::grant::{Grant, GrantState};
use breakglass_core::time::Timestamp;
use breakglass_store::Mutation;

use super::Service;
use super::error::Result;
use super::loaded::Loaded;

/// One change concerning a grant, as it is about to be committed.
pub struct Transition<'a> {
    /// The grant as the change leaves it.
    pub grant: &'a Grant,
    /// Its state before the change; `None` when the change created it.
    pub before: Option<GrantState>,
    /// The entries the change itself writes.
    pub entries: &'a [EntryDraft],
    /// The time the change was decided at (read once for the whole change).
    pub now: Timestamp,
    /// The policy and principals the change was decided under.
    pub loaded: &'a Loaded,
}

impl Transition<'_> {
    /// Whether this change ended a grant that was active.
    pub fn ends_active_grant(&self) -> bool {
        self.before == Some(GrantState::Active) && self.grant.state != GrantState::Active
    }
}

/// What effects add to a transition's append.
#[derive(Debug, Default)]
pub struct Consequences {
    pub entries: Vec<EntryDraft>,
    pub mutations: Vec<Mutation>,
}

/// Something a grant transition sets off. Every method has a default that
/// does nothing, so an effect implements only the moments it cares about.
pub trait Effect: Send + Sync {
    /// A short name, for logs.
    fn name(&self) -> &'static str;

    /// What the transition sets off inside its own commit: entries and
    /// state objects appended atomically with it (a change is never
    /// committed without them, nor they without it). An error refuses the
    /// transition; nothing is written.
    fn within(&self, _service: &Service, _change: &Transition<'_>, _add: &mut Consequences) -> Result<()> {
        Ok(())
    }

    /// What the transition sets off once its commit is durable: wake a
    /// worker, start work outside the database. It runs on the request's
    /// path, so it is quick, and it cannot undo the transition.
    fn after(&self, _service: &Service, _change: &Transition<'_>) {}

    /// A change to the entries of every append, whoever writes them.
    fn mark(&self, _entries: &mut [EntryDraft]) {}
}
