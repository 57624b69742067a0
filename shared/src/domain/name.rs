//! First and last names (§3.2): 1–100 characters of letters in any script, spaces, `-`, `'`
//! and `.`, stored in NFC. A letter may carry combining marks (accents, and the viramas and
//! vowel signs of Indic and Thai names: "कृष्ण", "สมศักดิ์"), at most [`MAX_MARKS`] in a row,
//! and a zero-width joiner or non-joiner may stand after a virama or between Arabic letters
//! (Indic half forms, Persian), as IDNA allows them.

use serde::{Deserialize, Serialize};

use super::unicode;

/// A person's first or last name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PersonName(String);

impl PersonName {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        const ONLY: &str = "may contain only letters, spaces, '-', ''' and '.'";
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("is required");
        }
        let name = unicode::nfc(trimmed);
        if name.chars().count() > Self::MAX_CHARS {
            return Err("must be at most 100 characters");
        }
        // Invisible characters (a variation selector is a mark, a Hangul filler a letter), and
        // joiners anywhere but after a virama or between Arabic letters.
        if unicode::has_disallowed(&name) {
            return Err(ONLY);
        }
        let chars: Vec<char> = name.chars().collect();
        // Marks in a row since the last letter (None: not after a letter).
        let mut marks: Option<usize> = None;
        for (i, &c) in chars.iter().enumerate() {
            marks = if unicode::is_mark(c) {
                match marks {
                    Some(n) if n < MAX_MARKS => Some(n + 1),
                    _ => return Err(ONLY),
                }
            } else if unicode::is_letter(c) {
                Some(0)
            } else if unicode::JOINERS.contains(&c) {
                if !chars.get(i + 1).is_some_and(|&n| unicode::is_letter(n)) {
                    return Err(ONLY);
                }
                None
            } else if matches!(c, ' ' | '-' | '\'' | '.') {
                None
            } else {
                return Err(ONLY);
            };
        }
        if !chars.iter().any(|&c| unicode::is_letter(c)) {
            return Err(ONLY);
        }
        Ok(Self(name.into_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Combining marks one letter may carry: Vietnamese stacks two, Thai and Indic scripts up to
/// three; more is "Zalgo" text, not a name.
pub const MAX_MARKS: usize = 4;

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
            ("कृष्ण", true),
            ("முருகன்", true),
            ("สมศักดิ์", true),
            ("น้อย", true),
            ("か\u{3099}", true),
            ("\u{0645}\u{06CC}\u{200C}\u{0631}\u{0648}\u{062F}", true),
            ("Nguyễn", true),
            ("\u{0301}Emile", false),
            ("Zalgx\u{0301}\u{0302}\u{0303}\u{0304}\u{0305}", false),
            ("a\u{200C}", false),
            ("\u{200D}a", false),
            ("Ann\u{202E}a", false),
            ("Ann\u{200B}a", false),
            ("Mar\u{200D}cus", false),
            ("Mar\u{FE0F}cus", false),
            ("\u{3164}", false),
            ("\u{0915}\u{094D}\u{200D}\u{0937}", true),
            ("", false),
            ("   ", false),
            ("R2D2", false),
            ("Louis \u{216B}", false),
            ("\u{24C2}arcus", false),
            ("\u{1F130}nn", false),
            ("\u{02BC}Okina", true),
            ("Kamaka\u{02BB}ala", true),
            ("\u{3007}", false),
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
        // Stored in NFC, counted after it: 100 decomposed "ž" are 100 characters.
        let decomposed = "z\u{030C}".repeat(100);
        assert_eq!(
            PersonName::parse(&decomposed).unwrap().as_str(),
            "ž".repeat(100)
        );
    }
}
