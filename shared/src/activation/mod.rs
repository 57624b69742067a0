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

/// A freshly issued code as stored: only its keyed hash, never the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCode {
    pub hash: String,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
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
    pub resend: rules::ResendCounter,
    pub version: u64,
}

impl ActivationState {
    /// Whether `user_id` (an id or an e-mail, any case) names this customer's user.
    pub fn is_user(&self, user_id: &str) -> bool {
        let given = user_id.trim();
        given == self.user_id || given.to_lowercase() == self.email_normalized
    }
}
