//! The storage port (CONVENTIONS §3): narrow traits the use cases depend on, the records they
//! exchange, and the repository error. DynamoDB is one adapter (`dynamodb`); attribute names
//! and key formats never leave it.

pub mod dynamodb;
pub mod keys;
pub mod memory;

use async_trait::async_trait;
use secrecy::SecretString;

use crate::activation::{
    ActivationAttempt, ActivationOutcome, ActivationState, IssuedCode, rules::ResendCounter,
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

/// Reads a tenant's categorization hierarchy.
#[async_trait]
pub trait HierarchySource: Send + Sync {
    async fn load_hierarchy(&self, tenant: &TenantId) -> Result<Option<Hierarchy>, StoreError>;
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
}

/// Writes customers.
#[async_trait]
pub trait CustomerStore: Send + Sync {
    /// Writes the customer and its tenant-scoped e-mail marker atomically.
    /// `AlreadyExists` when the e-mail is taken in the tenant.
    async fn create_customer(&self, new: &NewCustomer) -> Result<(), StoreError>;

    /// The one conditional switch to active (§4.2): succeeds only while the customer is
    /// pending, the code hash matches, the code is unexpired, attempts are left and `userId`
    /// names the user. Otherwise counts a wrong attempt atomically (never past the limit)
    /// and says why it failed.
    async fn activate(&self, attempt: &ActivationAttempt) -> Result<ActivationOutcome, StoreError>;

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
        resend: ResendCounter,
    ) -> Result<(), StoreError>;
}
