//! Free-text hygiene (§1.4): trimmed, in NFC, no control or invisible characters (see
//! [`has_disallowed`](super::unicode::has_disallowed)), length in characters capped.

/// Why a string was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextError {
    Empty,
    TooLong(usize),
    ControlCharacter,
}

impl std::fmt::Display for TextError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TextError::Empty => f.write_str("must not be empty"),
            TextError::TooLong(max) => write!(f, "must be at most {max} characters"),
            TextError::ControlCharacter => {
                f.write_str("must not contain control or invisible characters")
            }
        }
    }
}

/// Trims `raw` and checks it is non-empty, at most `max` characters (in NFC, the form
/// returned), with no control or invisible characters.
pub fn clean_text(raw: &str, max: usize) -> Result<String, TextError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(TextError::Empty);
    }
    if super::unicode::has_disallowed(trimmed) {
        return Err(TextError::ControlCharacter);
    }
    let text = super::unicode::nfc(trimmed);
    if text.chars().count() > max {
        return Err(TextError::TooLong(max));
    }
    Ok(text.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed_capped_and_free_of_control_characters() {
        let cases: [(&str, usize, Result<&str, TextError>); 16] = [
            ("  Vilnius ", 100, Ok("Vilnius")),
            ("", 100, Err(TextError::Empty)),
            ("   ", 100, Err(TextError::Empty)),
            ("abc", 2, Err(TextError::TooLong(2))),
            ("Šiauliai", 8, Ok("Šiauliai")),
            ("a\u{0}b", 100, Err(TextError::ControlCharacter)),
            // Bidirectional override and isolate, zero-width space, byte order mark, line
            // separator: invisible, and able to change what a reader sees.
            ("Vil\u{202E}nius", 100, Err(TextError::ControlCharacter)),
            ("dev\u{2066}-1", 100, Err(TextError::ControlCharacter)),
            ("Gedimino\u{200B}pr.", 100, Err(TextError::ControlCharacter)),
            ("\u{FEFF}01103", 100, Err(TextError::ControlCharacter)),
            (
                "Gedimino\u{2028}pr. 1",
                100,
                Err(TextError::ControlCharacter),
            ),
            // Stored in NFC; a joiner inside a Persian word stays.
            ("S\u{030C}iauliai", 8, Ok("Šiauliai")),
            (
                "\u{0645}\u{06CC}\u{200C}\u{0631}\u{0648}\u{062F}",
                100,
                Ok("\u{0645}\u{06CC}\u{200C}\u{0631}\u{0648}\u{062F}"),
            ),
            ("\u{E000}", 100, Err(TextError::ControlCharacter)),
            ("\u{200C}", 100, Err(TextError::ControlCharacter)),
            ("Vilnius\u{FE0F}", 100, Err(TextError::ControlCharacter)),
        ];
        for (raw, max, expected) in cases {
            assert_eq!(
                clean_text(raw, max).as_deref(),
                expected.as_deref(),
                "{raw:?}"
            );
        }
    }
}
