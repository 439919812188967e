//! The notification outbox: a notice someone should hear about becomes one
//! state object per interested channel, written in the same append as the
//! change it tells of, so a change is never committed without its
//! notifications nor notified without being committed. Delivering them is
//! the notify feature's worker; queueing them is here, so that any feature
//! (grant changes, drift findings) queues through one door.

use breakglass_core::notify::Notice;
use breakglass_core::time::Timestamp;
use breakglass_store::{Mutation, StateObject};
use serde::{Deserialize, Serialize};

use super::Service;
use super::error::Result;
use super::state::{Stored, mutation};

/// A notification's delivery status: the state object's status column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Waiting for its next attempt (due then), or claimed by a worker.
    Pending,
    Delivered,
    /// Gave up after the last attempt; an admin may queue it again.
    Failed,
    /// No longer true when it fell due (an "expiring soon" of a grant that ended).
    Skipped,
}

impl Delivery {
    pub const ALL: [Delivery; 4] = [Delivery::Pending, Delivery::Delivered, Delivery::Failed, Delivery::Skipped];

    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Pending => "pending",
            Delivery::Delivered => "delivered",
            Delivery::Failed => "failed",
            Delivery::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<Delivery> {
        Delivery::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

/// One notification as its state object's body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outgoing {
    pub channel: String,
    pub notice: Notice,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<Timestamp>,
}

/// A queued notification: its id, delivery status and next attempt (the
/// object's columns) and its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    pub id: String,
    pub status: Delivery,
    /// When it is next attempted (or its claim's lease runs out).
    pub due: Option<Timestamp>,
    pub out: Outgoing,
}

impl Stored for Notification {
    const KIND: &'static str = "notification";
    const NOUN: &'static str = "notification";

    fn id(&self) -> &str {
        &self.id
    }
    fn status(&self) -> &str {
        self.status.as_str()
    }
    fn owner(&self) -> &str {
        &self.out.channel
    }
    fn due(&self) -> Option<Timestamp> {
        self.due
    }
    fn encode(&self) -> serde_json::Result<String> {
        serde_json::to_string(&self.out)
    }
    fn decode(obj: &StateObject) -> serde_json::Result<Notification> {
        // A status this build does not know reads as failed: never sent
        // again by itself, visible to an admin.
        Ok(Notification {
            id: obj.id.clone(),
            status: Delivery::parse(&obj.status).unwrap_or(Delivery::Failed),
            due: obj.due.map(Timestamp),
            out: serde_json::from_str(&obj.body)?,
        })
    }
}

impl Service {
    /// The outbox rows for `notices` (each with the time it is due): one
    /// pending row per configured channel that wants its event. Commit them
    /// with the change they tell of.
    pub(crate) fn queue(&self, notices: Vec<(Notice, Timestamp)>, now: Timestamp) -> Result<Vec<Mutation>> {
        let mut rows = Vec::new();
        for (notice, due) in notices {
            for ch in self.config().notify.channels.iter().filter(|c| c.wants(notice.event)) {
                let n = Notification {
                    id: super::new_id("nt", now)?,
                    status: Delivery::Pending,
                    due: Some(due),
                    out: Outgoing {
                        channel: ch.name.clone(),
                        notice: notice.clone(),
                        attempts: 0,
                        last_error: None,
                        created_at: now,
                        last_attempt_at: None,
                        delivered_at: None,
                    },
                };
                rows.push(mutation(&n, 0)?);
            }
        }
        Ok(rows)
    }
}
