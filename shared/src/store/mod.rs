//! The storage port (CONVENTIONS §3): narrow traits the use cases depend on, the records they
//! exchange, and the repository error. DynamoDB is one adapter (`dynamodb`); attribute names
//! and key formats never leave it.

pub mod dynamodb;
pub mod keys;
pub mod memory;

use async_trait::async_trait;
use secrecy::SecretString;

use crate::activation::{
    ActivationAttempt, ActivationOutcome, ActivationState, IssuedCode, rules::ResendHistory,
};
use crate::categorization::Hierarchy;
use crate::domain::TenantId;
use crate::registration::Customer;

/// What can go wrong in a repository, from the use case's point of view.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness guard fired (the e-mail is taken).
    #[error("already exists")]
    AlreadyExists,
    /// A conditional write found the item in another state.
    #[error("condition failed")]
    ConditionFailed,
    #[error("not found")]
    NotFound,
    /// Throttled or unreachable after the SDK's retries: the client may retry later.
    #[error("storage unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("unexpected storage error")]
    Unexpected(#[source] anyhow::Error),
}

impl StoreError {
    /// The error with its cause (the DynamoDB code and message), for the log: `Display`
    /// names only the kind.
    pub fn detail(&self) -> String {
        match self {
            Self::Unavailable(cause) | Self::Unexpected(cause) => format!("{self}: {cause:#}"),
            other => other.to_string(),
        }
    }
}

/// Reads a tenant's categorization hierarchy.
#[async_trait]
pub trait HierarchySource: Send + Sync {
    async fn load_hierarchy(&self, tenant: &TenantId) -> Result<Option<Hierarchy>, StoreError>;
}

/// A claim on an `Idempotency-Key` (§3.6), taken before any other write.
#[derive(Debug, Clone)]
pub struct IdempotencyClaim {
    pub tenant: TenantId,
    pub key: String,
    /// The keyed hash of the canonical request body.
    pub body_hash: BodyHash,
    /// Unique per request: only the claimant may complete or release the claim.
    pub token: String,
    pub now: chrono::DateTime<chrono::Utc>,
    /// The record's end (24 h): DynamoDB TTL deletes it some time after; claims check it.
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// An in-progress claim older than this is abandoned (its request died) and may be taken.
    pub lock_expires_at: chrono::DateTime<chrono::Utc>,
}

/// A request body's keyed hashes ([`BodyHasher`](crate::api::idempotency::BodyHasher)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyHash {
    /// Under the current key: what a new record stores.
    pub stored: String,
    /// Under the key set's other keys while the key is rotated: what a record written by a
    /// function a rotation step behind or ahead holds for the same body.
    pub others: Vec<String>,
}

impl BodyHash {
    /// One hash, nothing rotating.
    pub fn single(hash: impl Into<String>) -> Self {
        Self {
            stored: hash.into(),
            others: Vec::new(),
        }
    }

    /// Whether a record's `bodyHash` is this body's.
    pub fn matches(&self, recorded: &str) -> bool {
        self.stored == recorded || self.others.iter().any(|hash| hash == recorded)
    }
}

/// A response kept for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: String,
    pub location: Option<String>,
}

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    Claimed,
    InProgress,
    /// The key was used with another body.
    Reused,
    Completed(StoredResponse),
}

/// The end of a claimed request: its response, recorded for replay.
#[derive(Debug, Clone)]
pub struct IdempotencyCompletion {
    pub tenant: TenantId,
    pub key: String,
    pub token: String,
    pub response: StoredResponse,
}

impl IdempotencyClaim {
    /// This claim's end, with `response` to replay.
    pub fn completion(&self, response: StoredResponse) -> IdempotencyCompletion {
        IdempotencyCompletion {
            tenant: self.tenant.clone(),
            key: self.key.clone(),
            token: self.token.clone(),
            response,
        }
    }
}

/// Idempotency records.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    async fn claim(&self, claim: &IdempotencyClaim) -> Result<ClaimOutcome, StoreError>;
    /// Records (or replaces) the response of a claim this request holds.
    async fn complete(&self, completion: &IdempotencyCompletion) -> Result<(), StoreError>;
    /// Gives a claim up (the request failed without writing), `at` (now), so that a request
    /// started later can run at once, while a put of a claim started earlier that arrives
    /// afterwards (this claim's, still on its way, or a twin request's) cannot take the key.
    async fn release(
        &self,
        claim: &IdempotencyClaim,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StoreError>;
    /// What the live (unexpired at `now`) record of `key` means for a request with this body:
    /// `Completed` with the response to replay, `Reused` for another body, `InProgress`; `None`
    /// without a live record. A read: it claims nothing.
    async fn recorded(
        &self,
        tenant: &TenantId,
        key: &str,
        body_hash: &BodyHash,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<ClaimOutcome>, StoreError>;
}

/// A customer about to be written, with the secrets that are stored but never returned.
pub struct NewCustomer {
    pub customer: Customer,
    /// The e-mail as uniqueness is decided on (lower-cased).
    pub email_normalized: String,
    /// Argon2id PHC string.
    pub password_hash: SecretString,
    /// The first activation code (its keyed hash and validity).
    pub code: IssuedCode,
    /// With an `Idempotency-Key`: the claim completes in the same transaction as the write.
    pub idempotency: Option<IdempotencyCompletion>,
}

/// Writes customers.
#[async_trait]
pub trait CustomerStore: Send + Sync {
    /// Writes the customer and its tenant-scoped e-mail marker atomically.
    /// `AlreadyExists` when the e-mail is taken in the tenant.
    async fn create_customer(&self, new: &NewCustomer) -> Result<(), StoreError>;

    /// An activation attempt (§4), counted and judged together: only while the customer is
    /// pending, the code unexpired and attempts are left is the attempt counted, and the same
    /// atomic write switches the customer to active if its key is one of the code's (§4.2),
    /// so parallel guesses cannot be judged more often than the limit allows (§4.1). Says
    /// why an attempt was refused.
    async fn activate(&self, attempt: &ActivationAttempt) -> Result<ActivationOutcome, StoreError>;

    /// What `attempt` came to if it was counted (a consistent read; `None`: not counted):
    /// after an `activate` whose answer never came, whether it was applied.
    async fn counted_outcome(
        &self,
        attempt: &ActivationAttempt,
    ) -> Result<Option<ActivationOutcome>, StoreError>;

    /// The id of the customer whose e-mail marker holds `email_normalized` in the tenant (a
    /// consistent read; `None`: the e-mail is free).
    async fn email_owner(
        &self,
        tenant: &TenantId,
        email_normalized: &str,
    ) -> Result<Option<String>, StoreError>;

    /// What resend needs to decide (`None`: no such customer in this tenant).
    async fn activation_state(
        &self,
        tenant: &TenantId,
        customer_id: &str,
    ) -> Result<Option<ActivationState>, StoreError>;

    /// Replaces the code (the old one stops working, attempts reset) if the customer is still
    /// pending and at `expected_version`; `ConditionFailed` otherwise.
    async fn reissue_code(
        &self,
        tenant: &TenantId,
        customer_id: &str,
        expected_version: u64,
        code: &IssuedCode,
        resend: &ResendHistory,
    ) -> Result<(), StoreError>;

    /// Whether the customer's current code is `code` (a consistent read): after a
    /// `reissue_code` whose answer was lost, whether it was applied.
    async fn holds_code(
        &self,
        tenant: &TenantId,
        customer_id: &str,
        code: &IssuedCode,
    ) -> Result<bool, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::StoreError;

    /// A log line about a storage failure says what DynamoDB answered, not only the kind.
    #[test]
    fn the_detail_of_a_storage_error_carries_its_cause() {
        let cause = || anyhow::anyhow!("DynamoDB service error ThrottlingException (HTTP 400)");
        for (error, expected) in [
            (
                StoreError::Unavailable(cause()),
                "storage unavailable: DynamoDB service error ThrottlingException (HTTP 400)",
            ),
            (
                StoreError::Unexpected(cause().context("reading the record")),
                "unexpected storage error: reading the record: DynamoDB service error \
                 ThrottlingException (HTTP 400)",
            ),
            (StoreError::AlreadyExists, "already exists"),
            (StoreError::ConditionFailed, "condition failed"),
        ] {
            assert_eq!(error.detail(), expected);
        }
    }
}
