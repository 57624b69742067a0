//! Smart selection (§3.3): the value the server picks for a mandatory key the client did not
//! supply. Deterministic; only a key with no allowed values at all cannot be defaulted.

use super::model::{AllowedValue, parse_integer};

/// Key names are compared case-insensitively, ignoring `_` and `-` (`riskLevel` ≡ `RISK_LEVEL`).
pub fn normalize_key(key: &str) -> String {
    key.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// The default for `key` from its allowed values, or `None` when there are none.
pub fn smart_default(key: &str, allowed: &[String]) -> Option<String> {
    let values: Vec<AllowedValue<'_>> = allowed.iter().map(|v| AllowedValue::parse(v)).collect();
    if values.is_empty() {
        return None;
    }
    let picked = match normalize_key(key).as_str() {
        "risklevel" => prefer_literal(&values, &["MEDIUM", "STANDARD"]),
        "riskscore" => risk_score(&values),
        "pep" | "pepstatus" => prefer_literal(&values, &["false", "NO", "NOT_APPLICABLE"]),
        "sanctionscheck" => prefer_literal(&values, &["STANDARD", "PERIODIC"]),
        "monitoring" | "monitoringfrequency" => prefer_literal(&values, &["WEEKLY", "STANDARD"]),
        "monthlylimit" => preferred_number(&values, 20_000, (15_000, 25_000)),
        "dailylimit" => preferred_number(&values, 5_000, (3_000, 7_000)),
        "edd" | "eddrequired" => prefer_literal(&values, &["OPTIONAL", "false"]),
        "verificationlevel" => prefer_literal(&values, &["STANDARD"]),
        _ => None,
    };
    Some(picked.unwrap_or_else(|| middle(&values)))
}

/// The first preference present among the literals (case-insensitive), in the list's spelling.
fn prefer_literal(values: &[AllowedValue<'_>], preferences: &[&str]) -> Option<String> {
    preferences.iter().find_map(|p| {
        values.iter().find_map(|v| match v {
            AllowedValue::Literal(lit) if lit.eq_ignore_ascii_case(p) => Some((*lit).to_owned()),
            _ => None,
        })
    })
}

/// The middle value of the list (the lower middle for an even count); for a range, its midpoint.
fn middle(values: &[AllowedValue<'_>]) -> String {
    match values[(values.len() - 1) / 2] {
        AllowedValue::Literal(lit) => lit.to_owned(),
        AllowedValue::Range(lo, hi) => midpoint(lo, hi).to_string(),
    }
}

fn midpoint(lo: i64, hi: i64) -> i64 {
    lo + (hi - lo) / 2
}

/// riskScore: a range → 55 if inside, else the value of 40–69 nearest the range's middle,
/// else the range's middle; a list → the first value in 40–69, else the middle.
fn risk_score(values: &[AllowedValue<'_>]) -> Option<String> {
    const PREFERRED: i64 = 55;
    const BAND: (i64, i64) = (40, 69);
    if let [AllowedValue::Range(lo, hi)] = values {
        let (lo, hi) = (*lo, *hi);
        if (lo..=hi).contains(&PREFERRED) {
            return Some(PREFERRED.to_string());
        }
        let (band_lo, band_hi) = (lo.max(BAND.0), hi.min(BAND.1));
        let mid = midpoint(lo, hi);
        if band_lo <= band_hi {
            return Some(mid.clamp(band_lo, band_hi).to_string());
        }
        return Some(mid.to_string());
    }
    first_in_band(values, BAND, PREFERRED)
}

/// Limits: the preferred amount if allowed, else a value in the band, else (None) the middle.
fn preferred_number(
    values: &[AllowedValue<'_>],
    preferred: i64,
    band: (i64, i64),
) -> Option<String> {
    // In the list's spelling ("020000" stays so): a client's value is matched against a
    // literal by its text, so a default spelled otherwise would be one the API refuses.
    values
        .iter()
        .find_map(|v| match *v {
            AllowedValue::Literal(lit) => {
                (parse_integer(lit) == Some(preferred)).then(|| lit.to_owned())
            }
            AllowedValue::Range(lo, hi) => (lo..=hi)
                .contains(&preferred)
                .then(|| preferred.to_string()),
        })
        .or_else(|| first_in_band(values, band, preferred))
}

/// The first list entry inside `band` (a range entry overlapping it gives its point nearest
/// `target`), in the list's spelling.
fn first_in_band(values: &[AllowedValue<'_>], band: (i64, i64), target: i64) -> Option<String> {
    values.iter().find_map(|v| match *v {
        AllowedValue::Literal(lit) => parse_integer(lit)
            .filter(|n| (band.0..=band.1).contains(n))
            .map(|_| lit.to_owned()),
        AllowedValue::Range(lo, hi) => {
            let (a, b) = (lo.max(band.0), hi.min(band.1));
            (a <= b).then(|| target.clamp(a, b).to_string())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(values: &[&str]) -> Vec<String> {
        values.iter().map(|s| (*s).to_owned()).collect()
    }

    /// One row per line of the §3.3 table, plus the fall-throughs.
    #[test]
    fn smart_selection_table() {
        let cases: &[(&str, &[&str], Option<&str>)] = &[
            // riskLevel: MEDIUM, else STANDARD, else the middle value.
            ("riskLevel", &["LOW", "MEDIUM", "HIGH"], Some("MEDIUM")),
            ("RISK_LEVEL", &["low", "medium", "high"], Some("medium")),
            ("risk-level", &["LOW", "STANDARD", "HIGH"], Some("STANDARD")),
            ("riskLevel", &["LOW", "HIGH", "CRITICAL"], Some("HIGH")),
            ("riskLevel", &["A", "B", "C", "D"], Some("B")),
            // riskScore with a range.
            ("riskScore", &["0-100"], Some("55")),
            ("riskScore", &["60-100"], Some("69")),
            ("riskScore", &["0-45"], Some("40")),
            ("riskScore", &["0-30"], Some("15")),
            ("riskScore", &["80-100"], Some("90")),
            ("riskScore", &["55-55"], Some("55")),
            // riskScore with a list.
            ("riskScore", &["10", "20", "45", "60"], Some("45")),
            ("riskScore", &["10", "20", "30"], Some("20")),
            ("riskScore", &["LOW", "HIGH"], Some("LOW")),
            // pep.
            ("pep", &["true", "false"], Some("false")),
            ("pepStatus", &["YES", "NO"], Some("NO")),
            (
                "PEP_STATUS",
                &["DOMESTIC", "NOT_APPLICABLE", "FOREIGN"],
                Some("NOT_APPLICABLE"),
            ),
            ("pep", &["DOMESTIC", "FOREIGN", "RCA"], Some("FOREIGN")),
            // sanctionsCheck.
            (
                "sanctionsCheck",
                &["STANDARD", "ENHANCED"],
                Some("STANDARD"),
            ),
            (
                "sanctions_check",
                &["PERIODIC", "REAL_TIME"],
                Some("PERIODIC"),
            ),
            (
                "sanctionsCheck",
                &["ENHANCED", "REAL_TIME", "NONE"],
                Some("REAL_TIME"),
            ),
            // monitoring.
            ("monitoring", &["WEEKLY", "DAILY"], Some("WEEKLY")),
            (
                "monitoringFrequency",
                &["DAILY", "STANDARD"],
                Some("STANDARD"),
            ),
            (
                "monitoring",
                &["DAILY", "REAL_TIME", "MONTHLY"],
                Some("REAL_TIME"),
            ),
            // monthlyLimit.
            (
                "monthlyLimit",
                &["5000", "15000", "20000", "25000", "50000"],
                Some("20000"),
            ),
            ("monthlyLimit", &["5000", "18000", "50000"], Some("18000")),
            // The preferred amount in the list's own spelling, which a client could send.
            ("monthlyLimit", &["5000", "020000", "50000"], Some("020000")),
            ("dailyLimit", &["+5000", "10000"], Some("+5000")),
            ("monthlyLimit", &["1000", "2000", "3000"], Some("2000")),
            ("monthlyLimit", &["10000-30000"], Some("20000")),
            ("monthlyLimit", &["21000-40000"], Some("21000")),
            // dailyLimit.
            (
                "dailyLimit",
                &["1000", "3000", "5000", "7000", "10000"],
                Some("5000"),
            ),
            ("daily_limit", &["1000", "6000", "10000"], Some("6000")),
            ("dailyLimit", &["100", "200", "300"], Some("200")),
            // edd.
            ("edd", &["REQUIRED", "OPTIONAL"], Some("OPTIONAL")),
            ("eddRequired", &["true", "false"], Some("false")),
            ("edd", &["A", "B", "C"], Some("B")),
            // verificationLevel.
            (
                "verificationLevel",
                &["BASIC", "STANDARD", "ENHANCED"],
                Some("STANDARD"),
            ),
            ("verification_level", &["BASIC", "FULL"], Some("BASIC")),
            // Anything else: the middle value; a range's midpoint.
            (
                "profile_completeness",
                &["BASIC", "STANDARD", "FULL"],
                Some("STANDARD"),
            ),
            ("data_retention_days", &["365-3650"], Some("2007")),
            (
                "transactionMonitoring",
                &["BATCH_DAILY", "REAL_TIME"],
                Some("BATCH_DAILY"),
            ),
            ("single", &["ONLY"], Some("ONLY")),
            // No allowed values at all: cannot be defaulted.
            ("riskLevel", &[], None),
            ("anything", &[], None),
        ];
        for (key, allowed, expected) in cases {
            assert_eq!(
                smart_default(key, &list(allowed)).as_deref(),
                *expected,
                "{key} from {allowed:?}"
            );
        }
    }

    #[test]
    fn key_names_ignore_case_underscores_and_dashes() {
        assert_eq!(normalize_key("riskLevel"), normalize_key("RISK_LEVEL"));
        assert_eq!(normalize_key("risk-level"), "risklevel");
    }
}
