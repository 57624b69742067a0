//! The warm-Lambda cache of hierarchies (§3.4 step 2): a short, configurable TTL, so a warm
//! registration costs one DynamoDB round trip (the write) and a warm lookup none.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

// tokio's clock, which tests can pause and advance; outside them it is `std::time::Instant`.
use tokio::time::Instant;

use super::Hierarchy;
use crate::domain::TenantId;
use crate::store::{HierarchySource, StoreError};

/// Most tenants kept; past this the cache starts afresh (tenants per function are few).
const MAX_TENANTS: usize = 1024;

/// Most hierarchy JSON kept (a 256 MB function): past this the cache starts afresh too. A
/// hierarchy is at most `MAX_HIERARCHY_JSON_BYTES`, so at least 128 of the largest fit.
const MAX_CACHED_BYTES: usize = 32 * 1024 * 1024;

/// Longest a "no hierarchy" answer is kept: a tenant's first hierarchy, put by an operator
/// while warm functions have already looked, is seen within this rather than the full TTL
/// (404 `CATEGORIZATION_NOT_FOUND` and `CATEGORY_REQUIRED` meanwhile). Only verified tenants
/// get here, so the extra reads are a misconfigured tenant's, one per function per 5 s.
pub const MISS_TTL: Duration = Duration::from_secs(5);

/// When it was read, the answer, and the answer's size as JSON.
type Entry = (Instant, Option<Arc<Hierarchy>>, usize);

/// Caches `HierarchySource` answers for `ttl`, and "none" for at most [`MISS_TTL`].
pub struct HierarchyCache {
    source: Arc<dyn HierarchySource>,
    ttl: Duration,
    miss_ttl: Duration,
    entries: Mutex<HashMap<TenantId, Entry>>,
}

impl HierarchyCache {
    pub fn new(source: Arc<dyn HierarchySource>, ttl: Duration) -> Self {
        Self {
            source,
            ttl,
            miss_ttl: MISS_TTL.min(ttl),
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub async fn get(&self, tenant: &TenantId) -> Result<Option<Arc<Hierarchy>>, StoreError> {
        if let Some(hit) = self.cached(tenant) {
            return Ok(hit);
        }
        let loaded = self.source.load_hierarchy(tenant).await?.map(Arc::new);
        if !self.ttl.is_zero() {
            let size = loaded
                .as_deref()
                .map_or(0, |h| serde_json::to_vec(h).map_or(0, |json| json.len()));
            if let Ok(mut entries) = self.entries.lock() {
                let held: usize = entries.values().map(|(_, _, size)| size).sum();
                if entries.len() >= MAX_TENANTS || held + size > MAX_CACHED_BYTES {
                    entries.clear();
                }
                entries.insert(tenant.clone(), (Instant::now(), loaded.clone(), size));
            }
        }
        Ok(loaded)
    }

    /// The cached answer, if there is a fresh one (`Some(None)`: the tenant has no hierarchy).
    pub fn cached(&self, tenant: &TenantId) -> Option<Option<Arc<Hierarchy>>> {
        let entries = self.entries.lock().ok()?;
        let (at, value, _) = entries.get(tenant)?;
        let ttl = if value.is_some() {
            self.ttl
        } else {
            self.miss_ttl
        };
        (at.elapsed() < ttl).then(|| value.clone())
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

    /// No hierarchy until its second read, counting reads.
    struct PutLater(AtomicUsize);

    #[async_trait::async_trait]
    impl HierarchySource for PutLater {
        async fn load_hierarchy(&self, t: &TenantId) -> Result<Option<Hierarchy>, StoreError> {
            let reads = self.0.fetch_add(1, Ordering::SeqCst);
            Ok((reads > 0).then(|| Hierarchy {
                tenant_id: t.clone(),
                tenant_name: "Put later".into(),
                compliance_level: None,
                default_category_id: None,
                categories: Default::default(),
                features: Default::default(),
            }))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn no_hierarchy_is_kept_for_the_miss_ttl_and_a_found_one_for_the_ttl() {
        let source = Arc::new(PutLater(AtomicUsize::new(0)));
        let ttl = Duration::from_secs(60);
        let cache = HierarchyCache::new(source.clone(), ttl);
        let tenant = TenantId::parse("t1").unwrap();
        assert!(cache.get(&tenant).await.unwrap().is_none());
        tokio::time::advance(MISS_TTL - Duration::from_millis(1)).await;
        assert!(cache.get(&tenant).await.unwrap().is_none(), "kept");
        assert_eq!(source.0.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(cache.get(&tenant).await.unwrap().is_some(), "read again");
        tokio::time::advance(ttl - Duration::from_millis(1)).await;
        assert!(cache.get(&tenant).await.unwrap().is_some());
        assert_eq!(
            source.0.load(Ordering::SeqCst),
            2,
            "a found one is kept for the TTL"
        );
        tokio::time::advance(Duration::from_millis(1)).await;
        cache.get(&tenant).await.unwrap();
        assert_eq!(
            source.0.load(Ordering::SeqCst),
            3,
            "and read again after it"
        );
        // Never longer than the TTL.
        let short = HierarchyCache::new(source, Duration::from_millis(10));
        assert_eq!(short.miss_ttl, Duration::from_millis(10));
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

    /// Hands out a hierarchy whose JSON is about 3 MiB, counting reads.
    struct Large(AtomicUsize);

    #[async_trait::async_trait]
    impl HierarchySource for Large {
        async fn load_hierarchy(&self, t: &TenantId) -> Result<Option<Hierarchy>, StoreError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(Some(Hierarchy {
                tenant_id: t.clone(),
                tenant_name: "x".repeat(3 * 1024 * 1024),
                compliance_level: None,
                default_category_id: None,
                categories: Default::default(),
                features: Default::default(),
            }))
        }
    }

    #[tokio::test]
    async fn the_cache_starts_afresh_past_its_bytes() {
        let source = Arc::new(Large(AtomicUsize::new(0)));
        let cache = HierarchyCache::new(source.clone(), Duration::from_secs(60));
        let tenant = |i: usize| TenantId::parse(&format!("t{i}")).unwrap();
        for i in 0..10 {
            cache.get(&tenant(i)).await.unwrap();
        }
        cache.get(&tenant(0)).await.unwrap();
        assert_eq!(source.0.load(Ordering::SeqCst), 10, "30 MiB are kept");
        cache.get(&tenant(10)).await.unwrap();
        cache.get(&tenant(0)).await.unwrap();
        assert_eq!(source.0.load(Ordering::SeqCst), 12, "33 MiB are not");
    }
}
