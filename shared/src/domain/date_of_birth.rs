//! Dates of birth (§3.2): `YYYY-MM-DD`, a real calendar date, the customer at least the
//! configured minimum age (default 18) and at most 120 years old on the day of registration.

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

/// A plausible date of birth of an adult customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DateOfBirth(NaiveDate);

/// Why a date of birth was refused: a bad date, or a real one of someone too young.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DobError {
    Invalid(&'static str),
    Underage(u32),
}

pub const MAX_AGE_YEARS: u32 = 120;

impl DateOfBirth {
    pub fn parse(raw: &str, today: NaiveDate, min_age: u32) -> Result<Self, DobError> {
        let raw = raw.trim();
        let well_formed = raw.len() == 10
            && raw.bytes().enumerate().all(|(i, b)| {
                if i == 4 || i == 7 {
                    b == b'-'
                } else {
                    b.is_ascii_digit()
                }
            });
        if !well_formed {
            return Err(DobError::Invalid("must be a date in YYYY-MM-DD format"));
        }
        let date = NaiveDate::parse_from_str(raw, "%Y-%m-%d")
            .map_err(|_| DobError::Invalid("is not a real calendar date"))?;
        if date > today {
            return Err(DobError::Invalid("must not be in the future"));
        }
        let age = age_on(date, today);
        if age > MAX_AGE_YEARS {
            return Err(DobError::Invalid("must be at most 120 years ago"));
        }
        if age < min_age {
            return Err(DobError::Underage(min_age));
        }
        Ok(Self(date))
    }

    pub fn date(&self) -> NaiveDate {
        self.0
    }
}

/// Completed years between `born` and `today` (a 29 February birthday ages on 1 March).
fn age_on(born: NaiveDate, today: NaiveDate) -> u32 {
    let mut years = today.year() - born.year();
    if (today.month(), today.day()) < (born.month(), born.day()) {
        years -= 1;
    }
    u32::try_from(years).unwrap_or(0)
}

impl std::fmt::Display for DateOfBirth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%d"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn date_of_birth_rules() {
        let today = day("2026-11-25");
        let cases: [(&str, Result<&str, &str>); 13] = [
            ("1990-05-15", Ok("1990-05-15")),
            ("2008-11-25", Ok("2008-11-25")),
            ("2008-11-26", Err("underage")),
            ("2020-01-01", Err("underage")),
            ("1905-11-26", Ok("1905-11-26")),
            ("1905-11-25", Err("invalid")),
            ("2027-01-01", Err("invalid")),
            ("1990-02-30", Err("invalid")),
            ("1990-13-01", Err("invalid")),
            ("0000-01-01", Err("invalid")),
            ("15/05/1990", Err("invalid")),
            ("1990-5-15", Err("invalid")),
            ("1990-05-15T00:00:00Z", Err("invalid")),
        ];
        for (raw, expected) in cases {
            let got = match DateOfBirth::parse(raw, today, 18) {
                Ok(d) => Ok(d.to_string()),
                Err(DobError::Underage(_)) => Err("underage"),
                Err(DobError::Invalid(_)) => Err("invalid"),
            };
            assert_eq!(got.as_deref().map_err(|e| *e), expected, "{raw:?}");
        }
    }

    #[test]
    fn leap_day_birthdays_come_of_age_on_the_first_of_march() {
        let born = "2008-02-29";
        assert!(matches!(
            DateOfBirth::parse(born, day("2026-02-28"), 18),
            Err(DobError::Underage(18))
        ));
        assert!(DateOfBirth::parse(born, day("2026-03-01"), 18).is_ok());
    }

    #[test]
    fn the_minimum_age_is_configurable() {
        assert!(DateOfBirth::parse("2010-01-01", day("2026-11-25"), 16).is_ok());
    }
}
