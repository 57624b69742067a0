//! Categorization (§2, §3.3): a tenant's hierarchy of risk categories and the features that
//! parametrize them, the server-side smart selection of default values, and the resolution of
//! a registration's categorization against the hierarchy.

mod cache;
mod model;
mod resolve;
mod smart_selection;

pub use cache::HierarchyCache;
pub use model::{
    AllowedValue, Category, Feature, Hierarchy, HierarchyProblem, MAX_HIERARCHY_ITEMS,
    MAX_HIERARCHY_JSON_BYTES,
};
pub use resolve::{
    CategorizationRequest, FeatureRelationRequest, ParameterSource, ResolvedCategorization,
    ResolvedFeature, ResolvedParameter, resolve,
};
pub use smart_selection::{normalize_key, smart_default};
