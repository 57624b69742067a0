//! The warm-Lambda cache of hierarchies (§3.4 step 2): a short, configurable TTL, so a warm
//! registration costs one DynamoDB round trip (the write) and a warm lookup none.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Hierarchy;
use crate::domain::TenantId;
use crate::store::{HierarchySource, StoreError};

/// Most tenants kept; past this the cache starts afresh (tenants per function are few).
const MAX_TENANTS: usize = 1024;

type Entry = (Instant, Option<Arc<Hierarchy>>);

/// Caches `HierarchySource` answers (including "none") for `ttl`.
pub struct HierarchyCache {
    source: Arc<dyn HierarchySource>,
    ttl: Duration,
    entries: Mutex<HashMap<TenantId, Entry>>,
}

impl HierarchyCache {
    pub fn new(source: Arc<dyn HierarchySource>, ttl: Duration) -> Self {
        Self {
            source,
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub async fn get(&self, tenant: &TenantId) -> Result<Option<Arc<Hierarchy>>, StoreError> {
        if let Some(hit) = self.cached(tenant) {
            return Ok(hit);
        }
        let loaded = self.source.load_hierarchy(tenant).await?.map(Arc::new);
        if !self.ttl.is_zero()
            && let Ok(mut entries) = self.entries.lock()
        {
            if entries.len() >= MAX_TENANTS {
                entries.clear();
            }
            entries.insert(tenant.clone(), (Instant::now(), loaded.clone()));
        }
        Ok(loaded)
    }

    /// The cached answer, if there is a fresh one (`Some(None)`: the tenant has no hierarchy).
    pub fn cached(&self, tenant: &TenantId) -> Option<Option<Arc<Hierarchy>>> {
        let entries = self.entries.lock().ok()?;
        let (at, value) = entries.get(tenant)?;
        (at.elapsed() < self.ttl).then(|| value.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting(AtomicUsize);

    #[async_trait::async_trait]
    impl HierarchySource for Counting {
        async fn load_hierarchy(&self, _: &TenantId) -> Result<Option<Hierarchy>, StoreError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(None)
        }
    }

    #[tokio::test]
    async fn a_warm_function_reads_a_hierarchy_once_per_ttl() {
        let source = Arc::new(Counting(AtomicUsize::new(0)));
        let cache = HierarchyCache::new(source.clone(), Duration::from_secs(60));
        let tenant = TenantId::parse("t1").unwrap();
        for _ in 0..3 {
            cache.get(&tenant).await.unwrap();
        }
        assert_eq!(source.0.load(Ordering::SeqCst), 1);
        cache.get(&TenantId::parse("t2").unwrap()).await.unwrap();
        assert_eq!(source.0.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_zero_ttl_disables_the_cache() {
        let source = Arc::new(Counting(AtomicUsize::new(0)));
        let cache = HierarchyCache::new(source.clone(), Duration::ZERO);
        let tenant = TenantId::parse("t1").unwrap();
        cache.get(&tenant).await.unwrap();
        cache.get(&tenant).await.unwrap();
        assert_eq!(source.0.load(Ordering::SeqCst), 2);
    }
}
