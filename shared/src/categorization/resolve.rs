//! Resolving a registration's categorization against the tenant's hierarchy (§3.3): pick the
//! category, match each feature relation, check every supplied parameter, and fill the mandatory
//! keys the client left out by smart selection. All problems are reported together.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::model::{AllowedValue, Feature, Hierarchy};
use super::smart_selection::{normalize_key, smart_default};
use crate::api::ApiError;
use crate::api::error::CategorizationProblems;

/// The categorization part of a validated registration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CategorizationRequest {
    /// `individualCustomer.categorization.id` or `customerCategory.id` (already checked to agree).
    pub category_id: Option<String>,
    /// `customerCategory.id` when both were given: it must name the same category.
    pub also_category_id: Option<String>,
    pub relations: Vec<FeatureRelationRequest>,
}

/// One entry of `categoryFeatureRelations`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeatureRelationRequest {
    pub feature_code: Option<String>,
    pub feature_id: Option<String>,
    pub enabled: Option<bool>,
    /// `(name, value)` pairs as supplied (trimmed, length-checked).
    pub parameters: Vec<(String, String)>,
}

/// Where a parameter's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ParameterSource {
    Request,
    Default,
}

/// A parameter as stored and returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedParameter {
    pub name: String,
    pub value: String,
    pub source: ParameterSource,
}

/// A feature of the category with its complete parametrization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedFeature {
    pub feature_code: String,
    pub feature_id: String,
    pub enabled: bool,
    pub parametrization: Vec<ResolvedParameter>,
}

/// The customer's categorization (§3.5 `data.categorization`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedCategorization {
    /// The category's stable `databaseId`.
    pub id: String,
    pub category_id: String,
    pub name: String,
    pub features: Vec<ResolvedFeature>,
}

/// Resolves the request against `hierarchy` (`None`: the tenant has none, so nothing resolves).
pub fn resolve(
    hierarchy: Option<&Hierarchy>,
    request: &CategorizationRequest,
) -> Result<ResolvedCategorization, ApiError> {
    let category = match (&request.category_id, hierarchy) {
        (Some(id), Some(h)) => h.category(id).ok_or(ApiError::CategoryNotFound)?,
        (Some(_), None) => return Err(ApiError::CategoryNotFound),
        (None, Some(h)) => h
            .default_category_id
            .as_deref()
            .and_then(|id| h.category(id))
            .ok_or(ApiError::CategoryRequired)?,
        (None, None) => return Err(ApiError::CategoryRequired),
    };
    let Some(hierarchy) = hierarchy else {
        return Err(ApiError::CategoryNotFound);
    };
    if let Some(other) = &request.also_category_id
        && hierarchy.category(other).map(|c| &c.category_id) != Some(&category.category_id)
    {
        return Err(ApiError::Validation(vec![crate::api::FieldError::new(
            "customerCategory.id",
            "FIELD_CONFLICT",
            "disagrees with individualCustomer.categorization.id",
        )]));
    }

    let mut problems = CategorizationProblems::default();
    // Match each relation to one of the category's features.
    let mut relation_of: BTreeMap<&str, &FeatureRelationRequest> = BTreeMap::new();
    for (i, relation) in request.relations.iter().enumerate() {
        let by_code = relation
            .feature_code
            .as_deref()
            .map(|c| hierarchy.features.get(c));
        let by_id = relation
            .feature_id
            .as_deref()
            .map(|id| hierarchy.features.values().find(|f| f.database_id == id));
        let label = relation
            .feature_code
            .clone()
            .or_else(|| relation.feature_id.clone())
            .unwrap_or_else(|| format!("categoryFeatureRelations[{i}]"));
        let feature = match (by_code, by_id) {
            (None, None) => {
                problems
                    .invalid_values
                    .insert(label, "the relation names no feature (code or id)".into());
                continue;
            }
            // A code that names no feature is an error even when the id would match one.
            (Some(None), _) => {
                problems
                    .invalid_values
                    .insert(label, "unknown feature".into());
                continue;
            }
            (Some(Some(a)), Some(Some(b))) if a.feature_code != b.feature_code => {
                problems
                    .invalid_values
                    .insert(label, "feature code and id name different features".into());
                continue;
            }
            (Some(Some(f)), _) | (_, Some(Some(f))) => f,
            _ => {
                problems
                    .invalid_values
                    .insert(label, "unknown feature".into());
                continue;
            }
        };
        let code = feature.feature_code.as_str();
        if !category.available_features.iter().any(|f| f == code) {
            problems.invalid_values.insert(
                code.to_owned(),
                format!(
                    "feature is not available for category {}",
                    category.category_id
                ),
            );
        } else if relation_of.insert(code, relation).is_some() {
            problems.invalid_values.insert(
                code.to_owned(),
                "feature appears in more than one relation".into(),
            );
        }
    }

    let mut features = Vec::with_capacity(category.available_features.len());
    for code in &category.available_features {
        let Some(feature) = hierarchy.features.get(code) else {
            // The admin command refuses such hierarchies; a stored one is a server fault.
            tracing::error!(
                tenant_id = %hierarchy.tenant_id,
                category = %category.category_id,
                feature = %code,
                "stored hierarchy names a feature it does not define"
            );
            return Err(ApiError::Internal);
        };
        let relation = relation_of.get(code.as_str()).copied();
        let parametrization = resolve_feature(feature, relation, &mut problems);
        features.push(ResolvedFeature {
            feature_code: feature.feature_code.clone(),
            feature_id: feature.database_id.clone(),
            enabled: relation.and_then(|r| r.enabled).unwrap_or(true),
            parametrization,
        });
    }

    if !problems.is_empty() {
        return Err(ApiError::CategorizationInvalid(problems));
    }
    Ok(ResolvedCategorization {
        id: category.database_id.clone(),
        category_id: category.category_id.clone(),
        name: category.category_name.clone(),
        features,
    })
}

/// Checks the supplied parameters of one feature and fills its missing mandatory keys.
fn resolve_feature(
    feature: &Feature,
    relation: Option<&FeatureRelationRequest>,
    problems: &mut CategorizationProblems,
) -> Vec<ResolvedParameter> {
    let code = &feature.feature_code;
    let known_keys: Vec<&String> = feature
        .mandatory_keys
        .iter()
        .chain(feature.allowed_values.keys())
        .collect();
    let canonical = |name: &str| {
        let wanted = normalize_key(name);
        known_keys
            .iter()
            .find(|k| normalize_key(k) == wanted)
            .map(|k| k.as_str())
    };

    let mut supplied: Vec<ResolvedParameter> = Vec::new();
    for (name, value) in relation
        .map(|r| r.parameters.as_slice())
        .unwrap_or_default()
    {
        let Some(key) = canonical(name) else {
            problems.invalid_values.insert(
                format!("{code}.{name}"),
                "unknown key for this feature".into(),
            );
            continue;
        };
        let label = format!("{code}.{key}");
        let allowed = feature
            .allowed_values
            .get(key)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let admitted = allowed
            .iter()
            .find_map(|a| AllowedValue::parse(a).admits(value));
        let Some(value) = admitted else {
            problems.invalid_values.insert(
                label,
                format!("value is not allowed (allowed: {})", allowed.join(", ")),
            );
            continue;
        };
        let repeated: Vec<&ResolvedParameter> = supplied.iter().filter(|p| p.name == key).collect();
        if !repeated.is_empty() {
            if !feature.multi_value_keys.iter().any(|k| k == key) {
                problems
                    .invalid_values
                    .insert(label, "key repeated but it is not a multi-value key".into());
            }
            if repeated.iter().any(|p| p.value == value) {
                continue;
            }
        }
        supplied.push(ResolvedParameter {
            name: key.to_owned(),
            value,
            source: ParameterSource::Request,
        });
    }

    let mut out = Vec::with_capacity(feature.mandatory_keys.len() + supplied.len());
    for key in &feature.mandatory_keys {
        let (given, rest): (Vec<_>, Vec<_>) = supplied.into_iter().partition(|p| &p.name == key);
        supplied = rest;
        if !given.is_empty() {
            out.extend(given);
            continue;
        }
        let allowed = feature
            .allowed_values
            .get(key)
            .map(Vec::as_slice)
            .unwrap_or_default();
        match smart_default(key, allowed) {
            Some(value) => out.push(ResolvedParameter {
                name: key.clone(),
                value,
                source: ParameterSource::Default,
            }),
            None => problems.missing_keys.push(format!("{code}.{key}")),
        }
    }
    out.extend(supplied);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo(index: usize) -> Hierarchy {
        let demo: serde_json::Value =
            serde_json::from_str(include_str!("../../../../shared/spec/demo-hierarchy.json"))
                .unwrap();
        serde_json::from_value(demo["tenants"][index].clone()).unwrap()
    }

    fn relation(code: &str, params: &[(&str, &str)]) -> FeatureRelationRequest {
        FeatureRelationRequest {
            feature_code: Some(code.into()),
            parameters: params
                .iter()
                .map(|(n, v)| ((*n).into(), (*v).into()))
                .collect(),
            ..Default::default()
        }
    }

    fn params(f: &ResolvedFeature) -> Vec<(&str, &str, ParameterSource)> {
        f.parametrization
            .iter()
            .map(|p| (p.name.as_str(), p.value.as_str(), p.source))
            .collect()
    }

    #[test]
    fn the_contract_example_keeps_supplied_values_and_fills_the_rest() {
        let h = demo(0);
        let request = CategorizationRequest {
            category_id: Some("MEDIUM_RISK_INDIVIDUAL".into()),
            relations: vec![relation(
                "MEDIUM_RISK_PROFILE",
                &[("riskLevel", "MEDIUM"), ("riskScore", "55")],
            )],
            ..CategorizationRequest::default()
        };
        let resolved = resolve(Some(&h), &request).unwrap();
        assert_eq!(resolved.id, "e50bb9ad-6a97-41da-8e66-4c3c0f7e2a3d");
        use ParameterSource::*;
        assert_eq!(
            params(&resolved.features[0]),
            vec![
                ("riskLevel", "MEDIUM", Request),
                ("riskScore", "55", Request),
                ("pep", "false", Default),
                ("sanctionsCheck", "STANDARD", Default),
                ("monitoring", "WEEKLY", Default),
                ("monthlyLimit", "20000", Default),
            ]
        );
        assert_eq!(resolved.features[1].feature_code, "TRANSACTION_LIMITS");
        assert_eq!(
            params(&resolved.features[1]),
            vec![
                ("dailyLimit", "5000", Default),
                ("monthlyLimit", "20000", Default)
            ]
        );
    }

    #[test]
    fn no_category_means_the_tenant_default_and_no_default_means_category_required() {
        let resolved = resolve(Some(&demo(0)), &CategorizationRequest::default()).unwrap();
        assert_eq!(resolved.category_id, "MEDIUM_RISK_INDIVIDUAL");
        assert_eq!(
            resolve(Some(&demo(1)), &CategorizationRequest::default()),
            Err(ApiError::CategoryRequired)
        );
        assert_eq!(
            resolve(None, &CategorizationRequest::default()),
            Err(ApiError::CategoryRequired)
        );
    }

    #[test]
    fn categories_match_by_code_or_database_id_and_unknown_ones_are_refused() {
        let h = demo(0);
        let by_id = CategorizationRequest {
            category_id: Some("550e8400-e29b-41d4-a716-446655440001".into()),
            ..Default::default()
        };
        assert_eq!(
            resolve(Some(&h), &by_id).unwrap().category_id,
            "HIGH_RISK_INDIVIDUAL"
        );
        let unknown = CategorizationRequest {
            category_id: Some("VIP".into()),
            ..Default::default()
        };
        assert_eq!(resolve(Some(&h), &unknown), Err(ApiError::CategoryNotFound));
        assert_eq!(resolve(None, &unknown), Err(ApiError::CategoryNotFound));
    }

    #[test]
    fn the_two_category_fields_must_name_the_same_category() {
        let h = demo(0);
        let agreeing = CategorizationRequest {
            category_id: Some("MEDIUM_RISK_INDIVIDUAL".into()),
            also_category_id: Some("e50bb9ad-6a97-41da-8e66-4c3c0f7e2a3d".into()),
            ..Default::default()
        };
        assert!(resolve(Some(&h), &agreeing).is_ok());
        let disagreeing = CategorizationRequest {
            category_id: Some("MEDIUM_RISK_INDIVIDUAL".into()),
            also_category_id: Some("LOW_RISK_INDIVIDUAL".into()),
            ..Default::default()
        };
        assert!(matches!(
            resolve(Some(&h), &disagreeing),
            Err(ApiError::Validation(_))
        ));
    }

    #[test]
    fn bad_parametrization_is_reported_in_full() {
        let h = demo(0);
        let request = CategorizationRequest {
            category_id: Some("HIGH_RISK_INDIVIDUAL".into()),
            relations: vec![
                relation(
                    "ENHANCED_AML_MONITORING",
                    &[
                        ("riskScore", "101"),
                        ("colour", "red"),
                        ("monitoring", "DAILY"),
                        ("monitoring", "WEEKLY"),
                        ("pepCategory", "RCA"),
                        ("pepCategory", "HIO"),
                    ],
                ),
                relation("MEDIUM_RISK_PROFILE", &[]),
                relation("GHOST", &[]),
            ],
            ..Default::default()
        };
        let Err(ApiError::CategorizationInvalid(problems)) = resolve(Some(&h), &request) else {
            panic!("expected CATEGORIZATION_INVALID");
        };
        let keys: Vec<&str> = problems.invalid_values.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            vec![
                "ENHANCED_AML_MONITORING.colour",
                "ENHANCED_AML_MONITORING.monitoring",
                "ENHANCED_AML_MONITORING.riskScore",
                "GHOST",
                "MEDIUM_RISK_PROFILE",
            ]
        );
        assert!(problems.missing_keys.is_empty());
    }

    #[test]
    fn multi_value_keys_take_several_values_and_keys_match_loosely() {
        let h = demo(0);
        let request = CategorizationRequest {
            category_id: Some("HIGH_RISK_INDIVIDUAL".into()),
            relations: vec![FeatureRelationRequest {
                feature_id: Some("660e8400-e29b-41d4-a716-446655440002".into()),
                parameters: vec![
                    ("PEP_CATEGORY".into(), "rca".into()),
                    ("pepCategory".into(), "HIO".into()),
                    ("pepCategory".into(), "HIO".into()),
                    ("risk_level".into(), "critical".into()),
                ],
                ..Default::default()
            }],
            ..Default::default()
        };
        let resolved = resolve(Some(&h), &request).unwrap();
        let aml = &resolved.features[0];
        let values: Vec<(&str, &str)> = aml
            .parametrization
            .iter()
            .map(|p| (p.name.as_str(), p.value.as_str()))
            .collect();
        assert!(values.contains(&("riskLevel", "CRITICAL")), "{values:?}");
        assert!(values.contains(&("pepCategory", "RCA")));
        assert_eq!(
            values.iter().filter(|(n, _)| *n == "pepCategory").count(),
            2
        );
        assert!(
            values.contains(&("edd", "false")),
            "edd falls back to false: {values:?}"
        );
    }

    #[test]
    fn a_mandatory_key_without_allowed_values_is_reported_missing() {
        let mut h = demo(0);
        let feature = h.features.get_mut("TRANSACTION_LIMITS").unwrap();
        feature.mandatory_keys.push("weeklyLimit".into());
        let request = CategorizationRequest {
            category_id: Some("LOW_RISK_INDIVIDUAL".into()),
            ..Default::default()
        };
        let Err(ApiError::CategorizationInvalid(problems)) = resolve(Some(&h), &request) else {
            panic!("expected CATEGORIZATION_INVALID");
        };
        assert_eq!(
            problems.missing_keys,
            vec!["TRANSACTION_LIMITS.weeklyLimit"]
        );
    }
}
