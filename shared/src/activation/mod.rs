//! Activation (§4): one-time codes and their keyed hashes, the brute-force and resend limits,
//! the settings, and the delivery port with its SES and local-mailbox adapters.

pub mod code;
pub mod delivery;
pub mod rules;
pub mod settings;

use chrono::{DateTime, Utc};

use crate::api::client_context::ClientContext;
use crate::domain::TenantId;
use crate::registration::CustomerStatus;

/// A freshly issued code as stored: only its keys (keyed hashes, [`code::CodeHasher`]),
/// never the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCode {
    pub keys: Vec<String>,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl IssuedCode {
    /// A code issued `now`, valid for `ttl`. Times are stored in whole epoch seconds: the
    /// expiry is rounded down (the `codeExpiresAt` a client is told is the instant the code
    /// stops working, never more than `ttl` after it was issued), while the issue time, from
    /// which the resend interval counts, is rounded up where it is stored.
    pub fn new(keys: Vec<String>, now: DateTime<Utc>, ttl: chrono::Duration) -> Self {
        use chrono::SubsecRound;
        Self {
            keys,
            issued_at: now,
            expires_at: now.trunc_subsecs(0) + ttl,
        }
    }
}

/// One activation attempt, as the store needs it.
#[derive(Debug, Clone)]
pub struct ActivationAttempt {
    /// A fresh random id, stored with the attempt when it is counted: a retry of its write,
    /// or a read after an answer that never came, can tell whether it was counted.
    pub id: String,
    pub tenant: TenantId,
    pub customer_id: String,
    /// The attempt's key: the code and the `userId` as sent, hashed as the issued code's keys
    /// are. Right exactly when it is one of them.
    pub code_key: String,
    pub now: DateTime<Utc>,
    pub context: ClientContext,
    pub max_attempts: u32,
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
    /// Whether `user_id` (an id or an e-mail, any case) names this customer's user, as an
    /// activation attempt's key decides it ([`code::UserRef`]).
    pub fn is_user(&self, user_id: &str) -> bool {
        match code::UserRef::given(user_id) {
            code::UserRef::Id(id) => !id.is_empty() && id == self.user_id,
            code::UserRef::Email(email) => email == self.email_normalized,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_expire_on_the_second_they_are_stored_in() {
        use chrono::TimeZone;
        let t0 = Utc.with_ymd_and_hms(2026, 11, 26, 10, 0, 0).unwrap();
        let day = chrono::Duration::hours(24);
        for offset_ms in [0, 1, 700, 999] {
            let code = IssuedCode::new(
                vec!["h".into()],
                t0 + chrono::Duration::milliseconds(offset_ms),
                day,
            );
            assert_eq!(code.expires_at, t0 + day, "{offset_ms}");
        }
    }

    #[test]
    fn resend_names_the_user_as_an_attempt_does() {
        let state = ActivationState {
            status: CustomerStatus::RegistrationCompleted,
            user_id: "8e8edb35-6d53-4694-9a6a-7d943cfada66".into(),
            email: "Jane@Example.com".into(),
            email_normalized: "jane@example.com".into(),
            code_issued_at: None,
            resend: rules::ResendHistory::default(),
            version: 1,
        };
        let cases = [
            ("8e8edb35-6d53-4694-9a6a-7d943cfada66", true),
            (" 8e8edb35-6d53-4694-9a6a-7d943cfada66 ", true),
            ("8E8EDB35-6D53-4694-9A6A-7D943CFADA66", true),
            ("JANE@example.COM", true),
            ("jane@ｅｘａｍｐｌｅ.com", true),
            ("8e8edb356d5346949a6a7d943cfada66", false),
            ("8e8edb35-6d53-4694-9a6a-7d943cfada67", false),
            ("john@example.com", false),
            ("", false),
            ("  ", false),
        ];
        for (given, expected) in cases {
            assert_eq!(state.is_user(given), expected, "{given:?}");
        }
    }
}
