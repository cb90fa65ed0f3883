//! Time as a dependency, so expiry rules are tested without sleeping.
use chrono::{DateTime, Duration, Utc};
use std::sync::Mutex;

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant, in UTC.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock, truncated to milliseconds (what every store keeps).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        truncate_millis(Utc::now())
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self(Mutex::new(truncate_millis(start)))
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Seconds since the epoch of 9999-12-31T23:59:59Z, the last second a client may name.
const LAST_CLIENT_SECOND: i64 = 253_402_300_799;

/// Holds a time sent by a client (a filter bound, an expiry, an imported
/// creation time) to the years 1970–9999.
///
/// chrono parses years far outside what the stores hold (PostgreSQL's
/// timestamps span 4713 BC–294276 AD, and refuse the rest with an error that
/// would otherwise surface as a 500), and nothing this service records is
/// older than 1970 or needs a year of five digits, which RFC 3339 cannot
/// write anyway.
///
/// # Errors
/// `Validation` naming `field`.
pub fn check_client_time(field: &str, t: DateTime<Utc>) -> crate::Result<DateTime<Utc>> {
    if (0..=LAST_CLIENT_SECOND).contains(&t.timestamp()) {
        Ok(t)
    } else {
        Err(crate::CoreError::field(
            field,
            "must be between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z",
        ))
    }
}

/// Drops sub-millisecond precision so that a value survives a round trip
/// through any store unchanged.
pub fn truncate_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn client_times_are_held_to_1970_through_9999() {
        for ok in [
            "1970-01-01T00:00:00Z",
            "2030-06-01T12:00:00Z",
            "9999-12-31T23:59:59.999Z",
        ] {
            assert!(check_client_time("since", at(ok)).is_ok(), "{ok}");
        }
        for bad in [
            "-4714-11-23T00:00:00Z",
            "1969-12-31T23:59:59.999Z",
            "+10000-01-01T00:00:00Z",
            "+262000-01-01T00:00:00Z",
        ] {
            let Err(crate::CoreError::Validation(list)) = check_client_time("since", at(bad))
            else {
                panic!("{bad} accepted");
            };
            assert_eq!(list[0].field, "since");
        }
    }
}
