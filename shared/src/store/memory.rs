//! An in-memory store for handler tests. It mirrors the DynamoDB adapter's observable rules
//! (e-mail uniqueness per tenant, case-insensitive) so handler tests can run without a server,
//! but it proves nothing about DynamoDB: the end-to-end tests do that against moto.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{CustomerStore, HierarchySource, NewCustomer, StoreError};
use crate::categorization::Hierarchy;
use crate::domain::TenantId;
use crate::registration::Customer;

#[derive(Default)]
pub struct MemoryStore {
    hierarchies: Mutex<HashMap<TenantId, Hierarchy>>,
    customers: Mutex<HashMap<(TenantId, String), Customer>>,
    emails: Mutex<HashMap<(TenantId, String), String>>,
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
        Ok(self.hierarchies.lock().ok().and_then(|h| h.get(tenant).cloned()))
    }
}

#[async_trait]
impl CustomerStore for MemoryStore {
    async fn create_customer(&self, new: &NewCustomer) -> Result<(), StoreError> {
        let poisoned = || StoreError::Unexpected(anyhow::anyhow!("lock poisoned"));
        let mut emails = self.emails.lock().map_err(|_| poisoned())?;
        let key = (new.customer.tenant_id.clone(), new.email_normalized.clone());
        if emails.contains_key(&key) {
            return Err(StoreError::AlreadyExists);
        }
        emails.insert(key, new.customer.id.clone());
        self.customers.lock().map_err(|_| poisoned())?.insert(
            (new.customer.tenant_id.clone(), new.customer.id.clone()),
            new.customer.clone(),
        );
        Ok(())
    }
}
