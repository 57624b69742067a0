//! E-mail addresses (§3.2): parsed by a real RFC 5322 parser (`email_address`), at most 254
//! characters, unique per tenant case-insensitively.
//!
//! Uniqueness needs one spelling per mailbox, and the address must be one SES can deliver
//! to. So the part before `@` must be an unquoted ASCII dot-atom (RFC 5322 also allows
//! `"quoted"` and, with SMTPUTF8, non-ASCII local parts: `"marcus.jensen"@example.com` is the
//! mailbox `marcus.jensen@example.com` under another spelling, and SES delivers to neither
//! form), and an internationalised domain is kept in its ASCII (IDNA/UTS-46, `xn--`) form,
//! which also folds full-width and other compatibility spellings of a domain into one.

use std::str::FromStr;

/// A deliverable e-mail address: as the customer wrote it (trimmed), with the domain in its
/// ASCII form if it was written in Unicode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub const MAX_CHARS: usize = 254;

    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        const INVALID: &str = "is not a valid e-mail address";
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("is required");
        }
        if trimmed.chars().count() > Self::MAX_CHARS {
            return Err("must be at most 254 characters");
        }
        if trimmed.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(INVALID);
        }
        let parsed = email_address::EmailAddress::from_str(trimmed).map_err(|_| INVALID)?;
        // Display names ("Marcus <m@x>") parse but are not an address.
        if parsed.as_str() != trimmed {
            return Err(INVALID);
        }
        let (local, domain) = (parsed.local_part(), parsed.domain());
        if !is_dot_atom(local) {
            return Err(
                "must have only unquoted ASCII letters, digits and !#$%&'*+-/=?^_`{|}~. before the @",
            );
        }
        // Address literals ("a@[127.0.0.1]") are not mailboxes we deliver to; a domain needs
        // a dot.
        if domain.starts_with('[') {
            return Err(INVALID);
        }
        let domain = if domain.is_ascii() {
            domain.to_owned()
        } else {
            idna::domain_to_ascii(domain).map_err(|_| INVALID)?
        };
        if !domain.contains('.') || domain.len() > 253 {
            return Err(INVALID);
        }
        let address = format!("{local}@{domain}");
        if address.len() > Self::MAX_CHARS
            || email_address::EmailAddress::from_str(&address).is_err()
        {
            return Err(INVALID);
        }
        Ok(Self(address))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form uniqueness is decided on: the whole (ASCII) address lower-cased.
    pub fn normalized(&self) -> String {
        self.0.to_ascii_lowercase()
    }

    /// The part before `@`, for the password rule.
    pub fn local_part(&self) -> &str {
        self.0.rsplit_once('@').map(|(l, _)| l).unwrap_or(&self.0)
    }
}

/// RFC 5322's dot-atom in ASCII: atext characters in dot-separated, non-empty runs.
fn is_dot_atom(local: &str) -> bool {
    const SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~";
    !local.is_empty()
        && local.split('.').all(|run| {
            !run.is_empty()
                && run
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || SPECIALS.contains(c))
        })
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
            // Other spellings of a mailbox, and forms SES cannot deliver to.
            ("\"marcus.jensen\"@example.com", false),
            ("\"marcus\\.jensen\"@example.com", false),
            ("\"a b\"@example.com", false),
            ("josé@example.com", false),
            ("ｍarcus@example.com", false),
            (".a@example.com", false),
            ("a..b@example.com", false),
            ("a.@example.com", false),
            ("o'brien+x{y}@example.com", true),
            ("a@müller.de", true),
            ("a@xn--mller-kva.de", true),
            ("a@ｅｘａｍｐｌｅ.com", true),
            ("a@exa mple.com", false),
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

    #[test]
    fn each_mailbox_has_one_normalized_form() {
        let cases = [
            ("Marcus.Jensen@Example.com", "marcus.jensen@example.com"),
            ("a@müller.de", "a@xn--mller-kva.de"),
            ("a@MÜLLER.de", "a@xn--mller-kva.de"),
            ("a@XN--MLLER-KVA.DE", "a@xn--mller-kva.de"),
            ("a@ｍüller.de", "a@xn--mller-kva.de"),
            ("a@ｅｘａｍｐｌｅ.com", "a@example.com"),
        ];
        for (raw, normalized) in cases {
            assert_eq!(Email::parse(raw).unwrap().normalized(), normalized, "{raw}");
        }
        // Kept as written, except that a Unicode domain is stored (and mailed) in ASCII.
        assert_eq!(
            Email::parse(" Marcus.Jensen@Example.COM ")
                .unwrap()
                .as_str(),
            "Marcus.Jensen@Example.COM"
        );
        assert_eq!(
            Email::parse("Jose@Müller.de").unwrap().as_str(),
            "Jose@xn--mller-kva.de"
        );
    }
}
