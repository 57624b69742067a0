//! Activation (§4): one-time codes and their keyed hashes, the brute-force and resend limits,
//! the settings, and the delivery port with its SES and local-mailbox adapters.

pub mod code;
pub mod delivery;
pub mod rules;
pub mod settings;

use chrono::{DateTime, Utc};
use subtle::ConstantTimeEq;

use crate::api::client_context::ClientContext;
use crate::domain::TenantId;
use crate::registration::CustomerStatus;

/// A freshly issued code as stored: only its keyed hash, never the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCode {
    pub hash: String,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl IssuedCode {
    /// A code issued `now`, valid for `ttl`. Its times are stored in whole epoch seconds, so
    /// it is issued on the second: the `codeExpiresAt` a client is told is the instant the
    /// code stops working, and the resend interval counts from when the code really was
    /// issued (with sub-second times, both fell up to a second short).
    pub fn new(hash: String, now: DateTime<Utc>, ttl: chrono::Duration) -> Self {
        use chrono::SubsecRound;
        let issued_at = now.trunc_subsecs(0);
        Self {
            hash,
            issued_at,
            expires_at: issued_at + ttl,
        }
    }
}

/// One activation attempt, as the store needs it.
#[derive(Debug, Clone)]
pub struct ActivationAttempt {
    pub tenant: TenantId,
    pub customer_id: String,
    pub code_hash: String,
    /// `userId` as sent: the user's id or its e-mail (matched case-insensitively).
    pub user_id: String,
    pub now: DateTime<Utc>,
    pub context: ClientContext,
    pub max_attempts: u32,
}

impl ActivationAttempt {
    /// Whether this attempt names the customer's user and carries its current code, judged
    /// against the stored attributes once the attempt has been counted (§4.1). The code hashes
    /// are compared in constant time; `userId` is the user's id or its e-mail, any case.
    pub fn matches(&self, code_hash: &str, user_id: &str, email_normalized: &str) -> bool {
        let code: bool = self.code_hash.as_bytes().ct_eq(code_hash.as_bytes()).into();
        code & names_user(&self.user_id, user_id, email_normalized)
    }
}

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActivationOutcome {
    Activated { user_id: String },
    NotFound,
    AlreadyActive,
    TooManyAttempts,
    Expired,
    Invalid { attempts_remaining: u32 },
}

/// What resend needs to know about a customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivationState {
    pub status: CustomerStatus,
    pub user_id: String,
    pub email: String,
    pub email_normalized: String,
    pub code_issued_at: Option<DateTime<Utc>>,
    pub resend: rules::ResendHistory,
    pub version: u64,
}

impl ActivationState {
    /// Whether `user_id` (an id or an e-mail, any case) names this customer's user.
    pub fn is_user(&self, user_id: &str) -> bool {
        names_user(user_id, &self.user_id, &self.email_normalized)
    }
}

/// Whether `given` (an id or an e-mail, any case, any spelling of its domain) names the user
/// with this id and e-mail.
fn names_user(given: &str, user_id: &str, email_normalized: &str) -> bool {
    let given = given.trim();
    !given.is_empty()
        && (given == user_id
            || crate::domain::Email::parse(given)
                .is_ok_and(|email| email.normalized() == email_normalized))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(code_hash: &str, user_id: &str) -> ActivationAttempt {
        ActivationAttempt {
            tenant: TenantId::parse("tenant_a").unwrap(),
            customer_id: "c-1".into(),
            code_hash: code_hash.into(),
            user_id: user_id.into(),
            now: Utc::now(),
            context: ClientContext {
                forwarded_from: "web".into(),
                platform: "WEB".into(),
                device_id: "d".into(),
                user_agent: "ua".into(),
                ip: None,
                source_ip: None,
            },
            max_attempts: rules::MAX_ATTEMPTS,
        }
    }

    #[test]
    fn codes_are_issued_on_the_second_they_are_stored_in() {
        use chrono::TimeZone;
        let t0 = Utc.with_ymd_and_hms(2026, 11, 26, 10, 0, 0).unwrap();
        let day = chrono::Duration::hours(24);
        for offset_ms in [0, 1, 700, 999] {
            let code = IssuedCode::new(
                "h".into(),
                t0 + chrono::Duration::milliseconds(offset_ms),
                day,
            );
            assert_eq!(
                (code.issued_at, code.expires_at),
                (t0, t0 + day),
                "{offset_ms}"
            );
        }
    }

    #[test]
    fn an_attempt_matches_only_the_current_code_and_this_customers_user() {
        let (hash, user, email) = ("ab12", "u-1", "jane@example.com");
        let cases = [
            ("ab12", "u-1", true),
            ("ab12", " u-1 ", true),
            ("ab12", "jane@example.com", true),
            ("ab12", "Jane@Example.COM", true),
            ("ab12", "jane@ｅｘａｍｐｌｅ.com", true),
            ("ab12", "\"jane\"@example.com", false),
            ("ab13", "u-1", false),
            ("ab1", "u-1", false),
            ("ab123", "u-1", false),
            ("", "u-1", false),
            ("AB12", "u-1", false),
            ("ab12", "u-2", false),
            ("ab12", "U-1", false),
            ("ab12", "john@example.com", false),
            ("ab12", "", false),
            ("ab12", "   ", false),
        ];
        for (given_hash, given_user, expected) in cases {
            assert_eq!(
                attempt(given_hash, given_user).matches(hash, user, email),
                expected,
                "{given_hash:?} {given_user:?}"
            );
        }
        // An item without an e-mail never matches an empty userId.
        assert!(!attempt("ab12", "").matches("ab12", "u-1", ""));
    }
}
