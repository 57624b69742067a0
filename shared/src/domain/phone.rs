//! Phone numbers (§3.2): a valid international number (Google's libphonenumber metadata via
//! the `rlibphonenumber` crate), stored in E.164.

use rlibphonenumber::{PHONE_NUMBER_UTIL, PhoneNumberFormat};

/// A valid phone number in E.164 form (`+37060012345`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("is required");
        }
        // Digits and the usual separators only: the library would read letters as keypad
        // digits ("+37060O12345" → …6…) and store a number nobody typed.
        let allowed =
            |c: char| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')' | '.' | '/');
        if trimmed.len() > 32 || !trimmed.chars().all(allowed) {
            return Err("is not a valid international phone number");
        }
        if !trimmed.starts_with('+') && !trimmed.starts_with("00") {
            return Err("must be in international format, starting with + and the country code");
        }
        // "00" is the international call prefix most of the world dials instead of "+".
        let international = match trimmed.strip_prefix("00") {
            Some(rest) => format!("+{rest}"),
            None => trimmed.to_owned(),
        };
        let number = PHONE_NUMBER_UTIL
            .parse(&international, None)
            .map_err(|_| "is not a valid international phone number")?;
        if !number.is_valid() {
            return Err("is not a valid international phone number");
        }
        Ok(Self(number.format_as(PhoneNumberFormat::E164).into_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Builds the phone metadata (~4 ms, measured by `make bench`) so the first registration
    /// doesn't: call it from init. Later calls return at once.
    pub fn warm_up() {
        std::sync::LazyLock::force(&PHONE_NUMBER_UTIL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_are_validated_and_stored_as_e164() {
        let cases = [
            ("+37060012345", Some("+37060012345")),
            ("+370 600 12345", Some("+37060012345")),
            ("+44 20 7946 0958", Some("+442079460958")),
            ("+1 650 253 0000", Some("+16502530000")),
            ("0037060012345", Some("+37060012345")),
            ("060012345", None),
            ("+370", None),
            ("+999 123456", None),
            ("phone", None),
            ("+37060O12345", None),
            ("+370 CALL MARCUS", None),
            ("", None),
            ("+3706001234567890123456789", None),
        ];
        for (raw, expected) in cases {
            assert_eq!(
                Phone::parse(raw).ok().as_ref().map(Phone::as_str),
                expected,
                "{raw:?}"
            );
        }
    }
}
