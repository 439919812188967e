//! Typed state objects. Everything the service keeps beside the log (a
//! grant, a session, a review, an incident, a queued notification, …) is a
//! versioned state object: a kind, an id, a status, an owner and a due
//! time the store can filter and sort on, and a JSON body. [`Stored`] says
//! once, per type, how a value maps onto those columns; the helpers here
//! read, list and write through it, so no feature decodes a body or builds
//! a [`Mutation`] by hand.
//!
//! A mutation is committed only together with the log entries of the same
//! append, and only if the object is still at the version it was read at
//! (compare-and-swap): that is what keeps two servers from activating or
//! expiring a grant twice.

use breakglass_core::time::Timestamp;
use breakglass_store::{Mutation, ObjectFilter, StateObject};

use super::Service;
use super::error::{Result, ServiceError, internal};

/// A value stored as a versioned state object.
pub trait Stored: Sized {
    /// The store's kind column (`grant`, `review`, …).
    const KIND: &'static str;
    /// What messages call one ("grant", "API token").
    const NOUN: &'static str;

    fn id(&self) -> &str;
    /// The status column, from the type's own state enum.
    fn status(&self) -> &str;
    /// Whose it is (the grantee, the token's name); "" when nobody's.
    fn owner(&self) -> &str;
    /// When something must next happen to it (the store's due index).
    fn due(&self) -> Option<Timestamp>;
    /// The body column.
    fn encode(&self) -> serde_json::Result<String>;
    /// The value back from its stored object.
    fn decode(obj: &StateObject) -> serde_json::Result<Self>;
}

/// The usual [`Stored::encode`] and [`Stored::decode`]: the body is the
/// value's own JSON.
macro_rules! json_body {
    () => {
        fn encode(&self) -> serde_json::Result<String> {
            serde_json::to_string(self)
        }
        fn decode(obj: &breakglass_store::StateObject) -> serde_json::Result<Self> {
            serde_json::from_str(&obj.body)
        }
    };
}
pub(crate) use json_body;

/// A stored value and the version it was read at.
#[derive(Clone, Debug)]
pub struct Versioned<T> {
    pub value: T,
    pub version: u64,
}

fn decode<T: Stored>(obj: &StateObject) -> Result<Versioned<T>> {
    let value = T::decode(obj).map_err(|e| internal(&format!("a stored {} is unreadable", T::NOUN), e))?;
    Ok(Versioned { value, version: obj.version })
}

/// The mutation writing `value` over the version read (0: it must not exist yet).
pub fn mutation<T: Stored>(value: &T, expected_version: u64) -> Result<Mutation> {
    Ok(Mutation {
        kind: T::KIND.into(),
        id: value.id().to_owned(),
        expected_version,
        status: value.status().to_owned(),
        owner: value.owner().to_owned(),
        due: value.due().map(|t| t.0),
        body: value.encode().map_err(|e| internal(&format!("cannot encode a {}", T::NOUN), e))?,
    })
}

/// A marker with no body: "this id was seen", created once (an event
/// recorded, a login challenge used). A second one with the same id fails
/// its compare-and-swap, which is how a repeat is detected.
pub fn marker(kind: &str, id: &str, status: &str, owner: &str, due: Option<Timestamp>) -> Mutation {
    Mutation {
        kind: kind.into(),
        id: id.into(),
        expected_version: 0,
        status: status.into(),
        owner: owner.into(),
        due: due.map(|t| t.0),
        body: "{}".into(),
    }
}

/// Which objects of a kind to list: by status, by owner, at most `limit`
/// (newest first).
pub fn filter(statuses: &[&str], owner: Option<&str>, limit: u32) -> ObjectFilter {
    ObjectFilter {
        statuses: statuses.iter().map(|s| (*s).to_owned()).collect(),
        owner: owner.map(str::to_owned),
        limit,
    }
}

impl Service {
    /// The object `id` of `T`'s kind, if it exists.
    pub(crate) async fn find<T: Stored>(&self, id: &str) -> Result<Option<Versioned<T>>> {
        match self.store().object(T::KIND, id).await? {
            Some(obj) => Ok(Some(decode(&obj)?)),
            None => Ok(None),
        }
    }

    /// The object `id`, or 404 naming it.
    pub(crate) async fn read<T: Stored>(&self, id: &str) -> Result<Versioned<T>> {
        self.find(id).await?.ok_or_else(|| ServiceError::NotFound(format!("no {} with id {id:?}", T::NOUN)))
    }

    /// Objects of `T`'s kind that pass `filter`, newest first.
    pub(crate) async fn objects<T: Stored>(&self, filter: &ObjectFilter) -> Result<Vec<Versioned<T>>> {
        self.store().objects(T::KIND, filter).await?.iter().map(decode).collect()
    }

    /// Objects in one of `statuses` whose due time is at or before `now`,
    /// soonest first, at most `limit`.
    pub(crate) async fn due<T: Stored>(
        &self,
        statuses: &[&str],
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<Versioned<T>>> {
        self.store().due_objects(T::KIND, statuses, now.0, limit).await?.iter().map(decode).collect()
    }

    /// The soonest due time of an object in one of `statuses`.
    pub(crate) async fn next_due_of<T: Stored>(&self, statuses: &[&str]) -> Result<Option<Timestamp>> {
        Ok(self.store().next_due(T::KIND, statuses).await?.map(Timestamp))
    }

    /// The log entries that changed object `id`, oldest first.
    pub(crate) async fn history_of<T: Stored>(&self, id: &str) -> Result<Vec<u64>> {
        Ok(self.store().object_log(T::KIND, id).await?)
    }
}
