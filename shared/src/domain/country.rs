//! Countries (§3.2): an ISO 3166-1 alpha-2 code or an English country name, case-insensitive,
//! stored as alpha-2. Names come from the ISO table (`rust_iso3166`), also without their
//! parenthesised or comma qualifier ("Bolivia (Plurinational State of)" → "Bolivia"), plus
//! the common short names people actually type.

use serde::{Deserialize, Serialize};

/// An ISO 3166-1 alpha-2 code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Country(String);

/// Everyday names that differ from the ISO short names.
const COMMON_NAMES: [(&str, &str); 20] = [
    ("united kingdom", "GB"),
    ("great britain", "GB"),
    ("uk", "GB"),
    ("united states", "US"),
    ("usa", "US"),
    ("russia", "RU"),
    ("czech republic", "CZ"),
    ("vietnam", "VN"),
    ("south korea", "KR"),
    ("north korea", "KP"),
    ("iran", "IR"),
    ("syria", "SY"),
    ("laos", "LA"),
    ("moldova", "MD"),
    ("tanzania", "TZ"),
    ("venezuela", "VE"),
    ("bolivia", "BO"),
    ("taiwan", "TW"),
    ("netherlands", "NL"),
    ("turkey", "TR"),
];

impl Country {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let wanted = raw.trim().to_lowercase();
        if wanted.is_empty() || wanted.len() > 100 {
            return Err("must be an ISO 3166-1 alpha-2 code or an English country name");
        }
        if let Some((_, code)) = COMMON_NAMES.iter().find(|(name, _)| *name == wanted) {
            return Ok(Self((*code).to_owned()));
        }
        if wanted.len() == 2 {
            return rust_iso3166::from_alpha2(&wanted.to_ascii_uppercase())
                .map(|c| Self(c.alpha2.to_owned()))
                .ok_or("is not an ISO 3166-1 alpha-2 code");
        }
        // A full ISO name is unique; a short form ("Korea", "Virgin Islands") may name several
        // countries, and then it names none: guessing could file a customer under a
        // sanctioned country.
        if let Some(c) = rust_iso3166::ALL
            .iter()
            .find(|c| c.name.to_lowercase() == wanted)
        {
            return Ok(Self(c.alpha2.to_owned()));
        }
        let mut matches = rust_iso3166::ALL.iter().filter(|c| {
            let name = c.name.to_lowercase();
            name.split([',', '(']).next().unwrap_or(&name).trim() == wanted
        });
        match (matches.next(), matches.next()) {
            (Some(c), None) => Ok(Self(c.alpha2.to_owned())),
            (Some(_), Some(_)) => {
                Err("names more than one country: use the ISO 3166-1 alpha-2 code")
            }
            _ => Err("must be an ISO 3166-1 alpha-2 code or an English country name"),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countries_are_stored_as_alpha2() {
        let cases = [
            ("LT", Some("LT")),
            ("lt", Some("LT")),
            ("Lithuania", Some("LT")),
            ("  LITHUANIA ", Some("LT")),
            ("Germany", Some("DE")),
            ("United Kingdom", Some("GB")),
            (
                "United Kingdom of Great Britain and Northern Ireland",
                Some("GB"),
            ),
            ("Bolivia", Some("BO")),
            ("Viet Nam", Some("VN")),
            ("UK", Some("GB")),
            ("Korea", None),
            ("South Korea", Some("KR")),
            ("Korea (Republic of)", Some("KR")),
            ("Virgin Islands", None),
            ("XX", None),
            ("Atlantis", None),
            ("", None),
            ("L", None),
        ];
        for (raw, expected) in cases {
            assert_eq!(
                Country::parse(raw).ok().as_ref().map(Country::as_str),
                expected,
                "{raw:?}"
            );
        }
    }
}
