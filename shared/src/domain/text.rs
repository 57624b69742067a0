//! Free-text hygiene (§1.4): trimmed, no control characters, length in characters capped.

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
            TextError::ControlCharacter => f.write_str("must not contain control characters"),
        }
    }
}

/// Trims `raw` and checks it is non-empty, at most `max` characters, with no control characters.
pub fn clean_text(raw: &str, max: usize) -> Result<String, TextError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(TextError::Empty);
    }
    if trimmed.chars().any(char::is_control) {
        return Err(TextError::ControlCharacter);
    }
    if trimmed.chars().count() > max {
        return Err(TextError::TooLong(max));
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed_capped_and_free_of_control_characters() {
        let cases: [(&str, usize, Result<&str, TextError>); 6] = [
            ("  Vilnius ", 100, Ok("Vilnius")),
            ("", 100, Err(TextError::Empty)),
            ("   ", 100, Err(TextError::Empty)),
            ("abc", 2, Err(TextError::TooLong(2))),
            ("Šiauliai", 8, Ok("Šiauliai")),
            ("a\u{0}b", 100, Err(TextError::ControlCharacter)),
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
