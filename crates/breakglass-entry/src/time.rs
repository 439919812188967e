//! Time as a value. Neither this crate nor breakglass-core reads the clock:
//! callers pass a [`Timestamp`], so tests of expiry and ordering need no
//! sleeping.

use std::fmt;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A source of time, injected wherever "now" matters. The system clock lives
/// outside this crate; tests use a clock they move by hand.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// Milliseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct Timestamp(pub i64);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid timestamp {input:?}: expected RFC 3339 like 2026-11-21T12:00:00Z")]
pub struct TimestampError {
    pub input: String,
}

impl Timestamp {
    pub fn from_millis(ms: i64) -> Timestamp {
        Timestamp(ms)
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    /// Parses an RFC 3339 timestamp with any offset; sub-millisecond digits are dropped.
    pub fn parse(s: &str) -> Result<Timestamp, TimestampError> {
        let dt = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| TimestampError { input: s.to_owned() })?;
        let ms = dt.unix_timestamp_nanos() / 1_000_000;
        i64::try_from(ms).map(Timestamp).map_err(|_| TimestampError { input: s.to_owned() })
    }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`, the one form written into log entries.
    pub fn to_rfc3339(self) -> String {
        let secs = self.0.div_euclid(1000);
        let ms = self.0.rem_euclid(1000);
        match OffsetDateTime::from_unix_timestamp(secs) {
            Ok(dt) => format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                dt.year(),
                u8::from(dt.month()),
                dt.day(),
                dt.hour(),
                dt.minute(),
                dt.second(),
                ms
            ),
            Err(_) => format!("@{}ms", self.0),
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses() {
        let t = Timestamp(1_795_000_000_123);
        let s = t.to_rfc3339();
        assert_eq!(s, "2026-11-18T11:06:40.123Z");
        assert_eq!(Timestamp::parse(&s).unwrap(), t);
        assert_eq!(Timestamp::parse("2026-11-18T12:06:40.123+01:00").unwrap(), t);
        assert!(Timestamp::parse("yesterday").is_err());
    }
}
