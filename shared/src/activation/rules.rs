//! The limits of §4: 5 wrong attempts per code, resend at most once per 60 s and 5 times per
//! 24 h per customer. Pure functions of the stored counters and "now", table-tested.

use chrono::{DateTime, Duration, Utc};

pub const MAX_ATTEMPTS: u32 = 5;
pub const RESEND_MIN_INTERVAL_SECONDS: i64 = 60;
pub const RESENDS_PER_WINDOW: u32 = 5;
pub const RESEND_WINDOW_SECONDS: i64 = 24 * 3600;

/// Resends in the current 24 h window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResendCounter {
    pub count: u32,
    pub window_start: Option<DateTime<Utc>>,
}

/// The resend decision: allowed with the counter to store, or refused with `Retry-After`.
pub fn resend(
    counter: ResendCounter,
    last_issued: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<ResendCounter, u64> {
    // Retry-After rounds up: retrying after it never meets the same refusal.
    let seconds_until = |at: DateTime<Utc>| {
        let millis = (at - now).num_milliseconds().max(1);
        u64::try_from((millis + 999) / 1000).unwrap_or(1)
    };
    if let Some(last) = last_issued {
        let next = last + Duration::seconds(RESEND_MIN_INTERVAL_SECONDS);
        if now < next {
            return Err(seconds_until(next));
        }
    }
    match counter.window_start {
        Some(start) if now < start + Duration::seconds(RESEND_WINDOW_SECONDS) => {
            if counter.count >= RESENDS_PER_WINDOW {
                Err(seconds_until(
                    start + Duration::seconds(RESEND_WINDOW_SECONDS),
                ))
            } else {
                Ok(ResendCounter {
                    count: counter.count + 1,
                    window_start: Some(start),
                })
            }
        }
        _ => Ok(ResendCounter {
            count: 1,
            window_start: Some(now),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn resend_limits() {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap();
        let s = Duration::seconds;
        let counter = |count, start: Option<DateTime<Utc>>| ResendCounter {
            count,
            window_start: start,
        };
        let cases: Vec<(
            ResendCounter,
            Option<DateTime<Utc>>,
            DateTime<Utc>,
            Result<ResendCounter, u64>,
        )> = vec![
            // First resend, 60 s after registration's code.
            (
                counter(0, None),
                Some(t0),
                t0 + s(60),
                Ok(counter(1, Some(t0 + s(60)))),
            ),
            // Too soon after the last code.
            (counter(0, None), Some(t0), t0 + s(59), Err(1)),
            (counter(0, None), Some(t0), t0 + s(10), Err(50)),
            (
                counter(0, None),
                Some(t0),
                t0 + Duration::milliseconds(400),
                Err(60),
            ),
            // Within the window: count up to 5.
            (
                counter(4, Some(t0)),
                Some(t0 + s(600)),
                t0 + s(700),
                Ok(counter(5, Some(t0))),
            ),
            (
                counter(5, Some(t0)),
                Some(t0 + s(600)),
                t0 + s(700),
                Err(86_400 - 700),
            ),
            // The window has passed: start again.
            (
                counter(5, Some(t0)),
                Some(t0 + s(600)),
                t0 + s(86_400),
                Ok(counter(1, Some(t0 + s(86_400)))),
            ),
        ];
        for (counter, last, now, expected) in cases {
            assert_eq!(
                resend(counter, last, now),
                expected,
                "{counter:?} last {last:?} now {now}"
            );
        }
    }
}
