//! First and last names (§3.2): 1–100 characters of letters in any script, spaces, `-`, `'`
//! and `.`. Combining marks are allowed so decomposed accents (e + ◌́) are letters too.

use serde::{Deserialize, Serialize};

/// A person's first or last name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PersonName(String);

impl PersonName {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("is required");
        }
        if trimmed.chars().count() > Self::MAX_CHARS {
            return Err("must be at most 100 characters");
        }
        let allowed = |c: char| {
            c.is_alphabetic() || c == ' ' || c == '-' || c == '\'' || c == '.' || is_combining(c)
        };
        if !trimmed.chars().all(allowed) || !trimmed.chars().any(char::is_alphabetic) {
            return Err("may contain only letters, spaces, '-', ''' and '.'");
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Unicode combining diacritical marks (the blocks used by Latin, Greek and Cyrillic names).
fn is_combining(c: char) -> bool {
    matches!(c, '\u{0300}'..='\u{036F}' | '\u{1AB0}'..='\u{1AFF}' | '\u{1DC0}'..='\u{1DFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_accept_any_script_and_reject_digits_and_symbols() {
        let cases = [
            ("Marcus", true),
            ("  Jensen ", true),
            ("Žemaitė", true),
            ("O'Brien-Smith Jr.", true),
            ("Иван", true),
            ("李", true),
            ("e\u{0301}mile", true),
            ("", false),
            ("   ", false),
            ("R2D2", false),
            ("Bob!", false),
            ("a\u{0}b", false),
            ("-'.", false),
            (&"a".repeat(101), false),
        ];
        for (raw, ok) in cases {
            assert_eq!(PersonName::parse(raw).is_ok(), ok, "{raw:?}");
        }
        assert!(
            PersonName::parse(&"ž".repeat(100)).is_ok(),
            "100 characters, 200 bytes"
        );
    }
}
