//! Passwords (§3.2): 12–128 characters with a lower-case letter, an upper-case letter, a digit
//! and a symbol; must not contain the e-mail's local part or the first/last name (when those
//! are at least 3 characters), compared case-insensitively. The value is kept in a
//! `SecretString` so it can't reach a log line by `Debug`.

use secrecy::{ExposeSecret, SecretString};

/// A password that passed the strength rules.
#[derive(Debug, Clone)]
pub struct Password(SecretString);

/// Why a password was refused (messages never contain the password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordProblem {
    Length,
    ControlCharacter,
    Classes,
    ContainsPersonalData,
}

impl PasswordProblem {
    pub fn message(&self) -> &'static str {
        match self {
            Self::Length => "must be 12-128 characters",
            Self::ControlCharacter => "must not contain control or invisible characters",
            Self::Classes => {
                "must contain a lower-case letter, an upper-case letter, a digit and a symbol"
            }
            Self::ContainsPersonalData => "must not contain the e-mail or the name",
        }
    }
}

impl Password {
    pub fn parse(raw: &str, personal: &[&str]) -> Result<Self, PasswordProblem> {
        let length = raw.chars().count();
        if !(12..=128).contains(&length) {
            return Err(PasswordProblem::Length);
        }
        // Invisible characters too: a zero-width space must not count as the symbol.
        if super::unicode::has_disallowed(raw) {
            return Err(PasswordProblem::ControlCharacter);
        }
        let has = |f: fn(&char) -> bool| raw.chars().any(|c| f(&c));
        // A visible character that is no letter, digit, space or mark (an accent alone is
        // not the symbol).
        let symbol = |c: &char| {
            !c.is_alphanumeric()
                && !c.is_whitespace()
                && !super::unicode::is_mark(*c)
                && !super::unicode::JOINERS.contains(c)
        };
        if !(has(|c| c.is_lowercase())
            && has(|c| c.is_uppercase())
            && has(|c| c.is_ascii_digit())
            && has(symbol))
        {
            return Err(PasswordProblem::Classes);
        }
        // Compared in NFC, the form names are stored in.
        let lowered = super::unicode::nfc(raw).to_lowercase();
        let leaks = personal
            .iter()
            .map(|p| p.trim().to_lowercase())
            .filter(|p| p.chars().count() >= 3)
            .any(|p| lowered.contains(&p));
        if leaks {
            return Err(PasswordProblem::ContainsPersonalData);
        }
        Ok(Self(SecretString::from(raw.to_owned())))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_strength_rules() {
        let personal = ["marcus.jensen", "Marcus", "Jensen"];
        let cases: [(&str, Result<(), PasswordProblem>); 14] = [
            ("SecurePass123!", Ok(())),
            ("Short1!a", Err(PasswordProblem::Length)),
            (&"Aa1!".repeat(33), Err(PasswordProblem::Length)),
            ("alllowercase123!", Err(PasswordProblem::Classes)),
            ("ALLUPPERCASE123!", Err(PasswordProblem::Classes)),
            ("NoDigitsHere!!!", Err(PasswordProblem::Classes)),
            ("NoSymbols12345", Err(PasswordProblem::Classes)),
            (
                "SecurePass123!\u{0}",
                Err(PasswordProblem::ControlCharacter),
            ),
            // Invisible: not a symbol, and not allowed at all.
            (
                "Securepass123\u{200B}",
                Err(PasswordProblem::ControlCharacter),
            ),
            (
                "Secure\u{202E}Pass123!",
                Err(PasswordProblem::ControlCharacter),
            ),
            (
                "Securepass123\u{FE0F}",
                Err(PasswordProblem::ControlCharacter),
            ),
            ("Securepass123\u{0301}", Err(PasswordProblem::Classes)),
            (
                "MyMarcusPass123!",
                Err(PasswordProblem::ContainsPersonalData),
            ),
            (
                "xxJENSENxx123!a",
                Err(PasswordProblem::ContainsPersonalData),
            ),
        ];
        for (raw, expected) in cases {
            assert_eq!(
                Password::parse(raw, &personal).map(|_| ()),
                expected,
                "{raw:?}"
            );
        }
    }

    #[test]
    fn short_names_do_not_count_as_personal_data() {
        assert!(Password::parse("SecureLiPass123!", &["Li", "Xu"]).is_ok());
    }

    #[test]
    fn a_name_typed_in_another_normalization_form_is_still_the_name() {
        assert_eq!(
            Password::parse("MyZoe\u{0308}Pass123!", &["Zoë"]).map(|_| ()),
            Err(PasswordProblem::ContainsPersonalData)
        );
    }

    #[test]
    fn debug_output_never_shows_the_password() {
        let p = Password::parse("SecurePass123!", &[]).unwrap();
        assert!(!format!("{p:?}").contains("SecurePass"));
    }
}
