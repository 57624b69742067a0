//! An in-memory store for handler tests. It mirrors the DynamoDB adapter's observable rules
//! (e-mail uniqueness per tenant, case-insensitive) so handler tests can run without a server,
//! but it proves nothing about DynamoDB: the end-to-end tests do that against moto.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{
    BodyHash, ClaimOutcome, CustomerStore, HierarchySource, IdempotencyClaim,
    IdempotencyCompletion, IdempotencyStore, NewCustomer, StoreError, StoredResponse,
};
use crate::activation::rules::ResendHistory;
use crate::activation::{ActivationAttempt, ActivationOutcome, ActivationState, IssuedCode};
use crate::categorization::Hierarchy;
use crate::domain::TenantId;
use crate::registration::Customer;
use crate::registration::{CustomerStatus, UserStatus};

/// A customer with the activation attributes the DynamoDB item carries.
#[derive(Clone)]
struct Record {
    customer: Customer,
    email_normalized: String,
    code: Option<IssuedCode>,
    attempts: u32,
    resend: ResendHistory,
    version: u64,
}

/// A lock another test thread panicked while holding.
fn poisoned<T>(_: std::sync::PoisonError<T>) -> StoreError {
    StoreError::Unexpected(anyhow::anyhow!("lock poisoned"))
}

/// An Idempotency-Key record's state.
enum KeyState {
    InProgress,
    Completed(StoredResponse),
    /// Given up at this instant: a claim started later (or then, by another claim) takes it,
    /// one started earlier does not.
    Released(chrono::DateTime<chrono::Utc>),
}

#[derive(Default)]
pub struct MemoryStore {
    hierarchies: Mutex<HashMap<TenantId, Hierarchy>>,
    customers: Mutex<HashMap<(TenantId, String), Record>>,
    emails: Mutex<HashMap<(TenantId, String), String>>,
    /// (tenant, key) → (body hash, token, state).
    idempotency: Mutex<HashMap<(TenantId, String), (String, String, KeyState)>>,
    /// Counted activation attempts: id → outcome.
    counted: Mutex<HashMap<String, ActivationOutcome>>,
}

impl MemoryStore {
    pub fn with_hierarchy(hierarchy: Hierarchy) -> Self {
        let store = Self::default();
        if let Ok(mut h) = store.hierarchies.lock() {
            h.insert(hierarchy.tenant_id.clone(), hierarchy);
        }
        store
    }

    pub fn customer_count(&self) -> usize {
        self.customers.lock().map(|c| c.len()).unwrap_or(0)
    }
}

#[async_trait]
impl HierarchySource for MemoryStore {
    async fn load_hierarchy(&self, tenant: &TenantId) -> Result<Option<Hierarchy>, StoreError> {
        Ok(self
            .hierarchies
            .lock()
            .ok()
            .and_then(|h| h.get(tenant).cloned()))
    }
}

#[async_trait]
impl CustomerStore for MemoryStore {
    async fn create_customer(&self, new: &NewCustomer) -> Result<(), StoreError> {
        let mut emails = self.emails.lock().map_err(poisoned)?;
        let key = (new.customer.tenant_id.clone(), new.email_normalized.clone());
        if emails.contains_key(&key) {
            return Err(StoreError::AlreadyExists);
        }
        // The completion is part of the transaction: only the claim's holder may make it, and
        // if it may not, nothing is written.
        if let Some(completion) = &new.idempotency {
            let mut records = self.idempotency.lock().map_err(poisoned)?;
            match records.get_mut(&(completion.tenant.clone(), completion.key.clone())) {
                Some(record)
                    if record.1 == completion.token
                        && !matches!(record.2, KeyState::Released(_)) =>
                {
                    record.2 = KeyState::Completed(completion.response.clone());
                }
                _ => return Err(StoreError::ConditionFailed),
            }
        }
        emails.insert(key, new.customer.id.clone());
        self.customers.lock().map_err(poisoned)?.insert(
            (new.customer.tenant_id.clone(), new.customer.id.clone()),
            Record {
                customer: new.customer.clone(),
                email_normalized: new.email_normalized.clone(),
                code: Some(new.code.clone()),
                attempts: 0,
                resend: ResendHistory::default(),
                version: 1,
            },
        );
        Ok(())
    }

    async fn activate(&self, a: &ActivationAttempt) -> Result<ActivationOutcome, StoreError> {
        let mut customers = self.customers.lock().map_err(poisoned)?;
        let Some(record) = customers.get_mut(&(a.tenant.clone(), a.customer_id.clone())) else {
            return Ok(ActivationOutcome::NotFound);
        };
        if record.customer.customer_status == CustomerStatus::Active {
            return Ok(ActivationOutcome::AlreadyActive);
        }
        // Expired before used up, in the order of the contract's table (§4.2).
        let Some(code) = record.code.clone().filter(|c| c.expires_at > a.now) else {
            return Ok(ActivationOutcome::Expired);
        };
        if record.attempts >= a.max_attempts {
            return Ok(ActivationOutcome::TooManyAttempts);
        }
        // Counted and judged together, as in the DynamoDB adapter (which looks the key up in
        // the item); here the keys are compared in constant time.
        record.attempts += 1;
        let right = code.keys.iter().fold(false, |right, key| {
            right
                | bool::from(subtle::ConstantTimeEq::ct_eq(
                    key.as_bytes(),
                    a.code_key.as_bytes(),
                ))
        });
        let outcome = if right {
            record.customer.customer_status = CustomerStatus::Active;
            record.customer.user.status = UserStatus::Active;
            record.code = None;
            record.version += 1;
            ActivationOutcome::Activated {
                user_id: record.customer.user.id.clone(),
            }
        } else {
            ActivationOutcome::Invalid {
                attempts_remaining: a.max_attempts - record.attempts,
            }
        };
        self.counted
            .lock()
            .map_err(poisoned)?
            .insert(a.id.clone(), outcome.clone());
        Ok(outcome)
    }

    async fn counted_outcome(
        &self,
        a: &ActivationAttempt,
    ) -> Result<Option<ActivationOutcome>, StoreError> {
        let counted = self.counted.lock().map_err(poisoned)?;
        Ok(counted.get(&a.id).cloned())
    }

    async fn email_owner(
        &self,
        tenant: &TenantId,
        email_normalized: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .emails
            .lock()
            .map_err(poisoned)?
            .get(&(tenant.clone(), email_normalized.to_owned()))
            .cloned())
    }

    async fn activation_state(
        &self,
        tenant: &TenantId,
        customer_id: &str,
    ) -> Result<Option<ActivationState>, StoreError> {
        let customers = self.customers.lock().map_err(poisoned)?;
        Ok(customers
            .get(&(tenant.clone(), customer_id.to_owned()))
            .map(|r| ActivationState {
                status: r.customer.customer_status,
                user_id: r.customer.user.id.clone(),
                email: r.customer.person.email.clone(),
                email_normalized: r.email_normalized.clone(),
                code_issued_at: r.code.as_ref().map(|c| c.issued_at),
                resend: r.resend.clone(),
                version: r.version,
            }))
    }

    async fn reissue_code(
        &self,
        tenant: &TenantId,
        customer_id: &str,
        expected_version: u64,
        code: &IssuedCode,
        resend: &ResendHistory,
    ) -> Result<(), StoreError> {
        let mut customers = self.customers.lock().map_err(poisoned)?;
        match customers.get_mut(&(tenant.clone(), customer_id.to_owned())) {
            Some(r)
                if r.version == expected_version
                    && r.customer.customer_status == CustomerStatus::RegistrationCompleted =>
            {
                r.code = Some(code.clone());
                r.attempts = 0;
                r.resend = resend.clone();
                r.version += 1;
                Ok(())
            }
            _ => Err(StoreError::ConditionFailed),
        }
    }

    async fn holds_code(
        &self,
        tenant: &TenantId,
        customer_id: &str,
        code: &IssuedCode,
    ) -> Result<bool, StoreError> {
        let customers = self.customers.lock().map_err(poisoned)?;
        Ok(customers
            .get(&(tenant.clone(), customer_id.to_owned()))
            .is_some_and(|r| r.code.as_ref() == Some(code)))
    }
}

#[async_trait]
impl IdempotencyStore for MemoryStore {
    async fn claim(&self, c: &IdempotencyClaim) -> Result<ClaimOutcome, StoreError> {
        let mut records = self.idempotency.lock().map_err(poisoned)?;
        let id = (c.tenant.clone(), c.key.clone());
        Ok(match records.get(&id) {
            None => {
                records.insert(
                    id,
                    (
                        c.body_hash.stored.clone(),
                        c.token.clone(),
                        KeyState::InProgress,
                    ),
                );
                ClaimOutcome::Claimed
            }
            Some((_, token, KeyState::Released(at))) if released_before(*at, token, c.now, c) => {
                records.insert(
                    id,
                    (
                        c.body_hash.stored.clone(),
                        c.token.clone(),
                        KeyState::InProgress,
                    ),
                );
                ClaimOutcome::Claimed
            }
            Some(record) => record_outcome(record, &c.body_hash),
        })
    }

    async fn complete(&self, c: &IdempotencyCompletion) -> Result<(), StoreError> {
        let mut records = self.idempotency.lock().map_err(poisoned)?;
        match records.get_mut(&(c.tenant.clone(), c.key.clone())) {
            Some(record) if record.1 == c.token && !matches!(record.2, KeyState::Released(_)) => {
                record.2 = KeyState::Completed(c.response.clone());
                Ok(())
            }
            _ => Err(StoreError::ConditionFailed),
        }
    }

    async fn release(
        &self,
        c: &IdempotencyClaim,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StoreError> {
        let mut records = self.idempotency.lock().map_err(poisoned)?;
        let id = (c.tenant.clone(), c.key.clone());
        let releasable = match records.get(&id) {
            None => true,
            Some((_, token, KeyState::Released(then))) => released_before(*then, token, at, c),
            Some((_, token, KeyState::InProgress)) => *token == c.token,
            Some((_, _, KeyState::Completed(_))) => false,
        };
        if releasable {
            records.insert(
                id,
                (
                    c.body_hash.stored.clone(),
                    c.token.clone(),
                    KeyState::Released(at),
                ),
            );
        }
        Ok(())
    }

    async fn recorded(
        &self,
        tenant: &TenantId,
        key: &str,
        body_hash: &BodyHash,
        _now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<ClaimOutcome>, StoreError> {
        let records = self.idempotency.lock().map_err(poisoned)?;
        Ok(records
            .get(&(tenant.clone(), key.to_owned()))
            .filter(|record| !matches!(record.2, KeyState::Released(_)))
            .map(|record| record_outcome(record, body_hash)))
    }
}

/// Whether claim `c`, as of `now`, may take a record the claim with `token` released `at`.
fn released_before(
    at: chrono::DateTime<chrono::Utc>,
    token: &str,
    now: chrono::DateTime<chrono::Utc>,
    c: &IdempotencyClaim,
) -> bool {
    at < now || (at == now && token != c.token)
}

/// What a record (body hash, token, response once completed) means for a request with
/// `body_hash`, as the DynamoDB adapter's `record_outcome` decides it.
fn record_outcome(
    (hash, _, state): &(String, String, KeyState),
    body_hash: &BodyHash,
) -> ClaimOutcome {
    match state {
        // Released, by a claim this one may not overtake: a retry may take it.
        KeyState::Released(_) => ClaimOutcome::InProgress,
        _ if !body_hash.matches(hash) => ClaimOutcome::Reused,
        KeyState::Completed(response) => ClaimOutcome::Completed(response.clone()),
        KeyState::InProgress => ClaimOutcome::InProgress,
    }
}
