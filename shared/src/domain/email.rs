//! E-mail addresses (§3.2): parsed by a real RFC 5322 parser (`email_address`), at most 254
//! characters, unique per tenant case-insensitively (the normalized form is the whole address
//! lower-cased).

use std::str::FromStr;

/// A syntactically valid e-mail address as the customer wrote it (trimmed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub const MAX_CHARS: usize = 254;

    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("is required");
        }
        if trimmed.chars().count() > Self::MAX_CHARS {
            return Err("must be at most 254 characters");
        }
        if trimmed.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err("is not a valid e-mail address");
        }
        let parsed = email_address::EmailAddress::from_str(trimmed)
            .map_err(|_| "is not a valid e-mail address")?;
        // Display names ("Marcus <m@x>") and address literals parse but are not mailboxes we
        // can deliver to; a domain needs a dot.
        let domain = parsed.domain();
        if parsed.as_str() != trimmed || !domain.contains('.') || domain.starts_with('[') {
            return Err("is not a valid e-mail address");
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form uniqueness is decided on.
    pub fn normalized(&self) -> String {
        self.0.to_lowercase()
    }

    /// The part before `@`, for the password rule.
    pub fn local_part(&self) -> &str {
        self.0.rsplit_once('@').map(|(l, _)| l).unwrap_or(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_addresses_are_parsed_not_pattern_matched() {
        let cases = [
            ("marcus.jensen@example.com", true),
            ("  Marcus.Jensen@Example.COM ", true),
            ("a+tag@sub.example.lt", true),
            ("no-at-sign.example.com", false),
            ("two@@example.com", false),
            ("a@localhost", false),
            ("Marcus <m@example.com>", false),
            ("a b@example.com", false),
            ("", false),
            ("a@[127.0.0.1]", false),
        ];
        for (raw, ok) in cases {
            assert_eq!(Email::parse(raw).is_ok(), ok, "{raw:?}");
        }
        let long = format!("{}@example.com", "a".repeat(243));
        assert!(Email::parse(&long).is_err(), "255 characters");
    }

    #[test]
    fn uniqueness_is_case_insensitive() {
        let a = Email::parse("Marcus.Jensen@Example.com").unwrap();
        let b = Email::parse("marcus.jensen@example.COM").unwrap();
        assert_eq!(a.normalized(), b.normalized());
        assert_eq!(a.local_part(), "Marcus.Jensen");
    }
}
