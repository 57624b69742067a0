//! The limits of §4: 5 wrong attempts per code, resend at most once per 60 s and 5 times per
//! 24 h per customer. Pure functions of the stored history and "now", table-tested.
//!
//! "5 per 24 h" holds for every 24 h period, not per fixed window: a window that started at
//! the first resend and reset when it ended let 5 resends at its end and 5 more at the start
//! of the next (9 codes, 45 judged guesses and 9 e-mails in ~10 minutes).

use chrono::{DateTime, Duration, Utc};

pub const MAX_ATTEMPTS: u32 = 5;
pub const RESEND_MIN_INTERVAL_SECONDS: i64 = 60;
pub const RESENDS_PER_WINDOW: usize = 5;
pub const RESEND_WINDOW_SECONDS: i64 = 24 * 3600;

/// The customer's resends in the last 24 h, oldest first (at most [`RESENDS_PER_WINDOW`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResendHistory {
    pub recent: Vec<DateTime<Utc>>,
}

/// The resend decision: allowed with the history to store, or refused with `Retry-After`.
pub fn resend(
    history: &ResendHistory,
    last_issued: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<ResendHistory, u64> {
    // Retry-After rounds up: retrying after it never meets the same refusal.
    let seconds_until = |at: DateTime<Utc>| {
        let nanos = (at - now).num_nanoseconds().unwrap_or(i64::MAX).max(1);
        u64::try_from(nanos).map_or(1, |n| n.div_ceil(1_000_000_000))
    };
    let window = Duration::seconds(RESEND_WINDOW_SECONDS);
    let mut recent: Vec<DateTime<Utc>> = history
        .recent
        .iter()
        .copied()
        .filter(|at| *at + window > now)
        .collect();
    recent.sort();
    // Allowed again once both limits allow it: 60 s after the last code, and once the
    // oldest of the last five resends is 24 h old. Retry-After names the later of the two.
    let interval_ends = last_issued
        .map(|last| last + Duration::seconds(RESEND_MIN_INTERVAL_SECONDS))
        .filter(|next| now < *next);
    let window_ends = (recent.len() >= RESENDS_PER_WINDOW)
        .then(|| recent[recent.len() - RESENDS_PER_WINDOW] + window);
    if let Some(allowed) = interval_ends.into_iter().chain(window_ends).max() {
        return Err(seconds_until(allowed));
    }
    recent.push(now);
    Ok(ResendHistory { recent })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn resend_limits() {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap();
        let s = Duration::seconds;
        let at = |offsets: &[i64]| ResendHistory {
            recent: offsets.iter().map(|o| t0 + s(*o)).collect(),
        };
        let day = RESEND_WINDOW_SECONDS;
        let cases: Vec<(ResendHistory, Option<i64>, i64, Result<ResendHistory, u64>)> = vec![
            // First resend, 60 s after registration's code.
            (at(&[]), Some(0), 60, Ok(at(&[60]))),
            // Too soon after the last code.
            (at(&[]), Some(0), 59, Err(1)),
            (at(&[]), Some(0), 10, Err(50)),
            // Within 24 h: up to 5.
            (
                at(&[0, 100, 200, 300]),
                Some(300),
                700,
                Ok(at(&[0, 100, 200, 300, 700])),
            ),
            (
                at(&[0, 100, 200, 300, 400]),
                Some(400),
                700,
                Err(u64::try_from(day - 700).unwrap()),
            ),
            // Older resends leave the window one by one.
            (
                at(&[0, 100, 200, 300, 400]),
                Some(400),
                day,
                Ok(at(&[100, 200, 300, 400, day])),
            ),
            (
                at(&[100, 200, 300, 400, day]),
                Some(day),
                day + 60,
                Err(u64::try_from(100 + day - (day + 60)).unwrap()),
            ),
            // The fixed window's hole: 4 resends at the end of one day, then at most one
            // more until they are 24 h old, however the days fall.
            (
                at(&[0, day - 300, day - 240, day - 180, day - 120]),
                Some(day - 120),
                day,
                Ok(at(&[day - 300, day - 240, day - 180, day - 120, day])),
            ),
            (
                at(&[day - 300, day - 240, day - 180, day - 120, day]),
                Some(day),
                day + 60,
                Err(u64::try_from(day - 300 + day - (day + 60)).unwrap()),
            ),
            // Both limits at once: Retry-After names the later, not the 60 s one.
            (
                at(&[0, 100, 200, 300, 400]),
                Some(690),
                700,
                Err(u64::try_from(day - 700).unwrap()),
            ),
            // Stored out of order, or with stale entries: the same answer.
            (
                at(&[400, 0, 300, 100, 200, -day]),
                Some(400),
                700,
                Err(u64::try_from(day - 700).unwrap()),
            ),
        ];
        for (history, last, now, expected) in cases {
            let result = resend(&history, last.map(|l| t0 + s(l)), t0 + s(now));
            assert_eq!(result, expected, "{history:?} last {last:?} now {now}");
        }
        // Retry-After is never 0, and retrying after it is never too soon.
        assert_eq!(
            resend(&at(&[]), Some(t0), t0 + Duration::milliseconds(59_999)),
            Err(1)
        );
        assert_eq!(
            resend(&at(&[]), Some(t0), t0 + Duration::nanoseconds(999_999)),
            Err(60)
        );
    }

    /// However resends are timed, no 24 h period holds more than five.
    #[test]
    fn no_day_holds_more_than_five_resends() {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap();
        let mut history = ResendHistory::default();
        let mut last = Some(t0);
        let mut granted = Vec::new();
        // A client retrying every minute for three days.
        for minute in 1..=(3 * 24 * 60) {
            let now = t0 + Duration::minutes(minute);
            if let Ok(next) = resend(&history, last, now) {
                history = next;
                last = Some(now);
                granted.push(now);
            }
        }
        for (i, first) in granted.iter().enumerate() {
            let within = granted[i..]
                .iter()
                .take_while(|t| **t < *first + Duration::seconds(RESEND_WINDOW_SECONDS))
                .count();
            assert!(
                within <= RESENDS_PER_WINDOW,
                "{within} resends from {first}"
            );
        }
        assert_eq!(granted.len(), 15, "five per day over three days");
    }
}
