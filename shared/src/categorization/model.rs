//! The hierarchy as the contract shows it (§2's `data`): the same struct is read from the
//! admin's JSON file, stored, and returned by the lookup.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::TenantId;

use super::smart_selection::normalize_key;

/// One tenant's categorization hierarchy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hierarchy {
    pub tenant_id: TenantId,
    pub tenant_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliance_level: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_category_id: Option<String>,
    pub categories: BTreeMap<String, Category>,
    #[serde(default)]
    pub features: BTreeMap<String, Feature>,
}

/// A hierarchy holds at most this many category and feature items: with its tenant header
/// they are written in one DynamoDB transaction, which takes 100 actions.
pub const MAX_HIERARCHY_ITEMS: usize = 99;

/// A hierarchy's JSON is at most this long: each item far below DynamoDB's 400 KB, the
/// transaction below its 4 MB, the lookup's answer below Lambda's 6 MB, and the warm cache
/// (32 MiB) holds at least 128 of the largest. The demo's items are 0.4–0.7 KB, so 99 such
/// items with long value lists fit several times over.
pub const MAX_HIERARCHY_JSON_BYTES: usize = 256 * 1024;

/// A risk category, keyed by its code (`categoryId`); `databaseId` is the stable id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Category {
    pub database_id: String,
    pub category_id: String,
    pub category_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub available_features: Vec<String>,
}

/// A feature: the keys that parametrize it and the values each key allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Feature {
    pub database_id: String,
    pub feature_code: String,
    pub feature_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub mandatory_keys: Vec<String>,
    #[serde(default)]
    pub allowed_values: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub multi_value_keys: Vec<String>,
}

/// One allowed value: a literal, or `"A-B"` meaning any integer from A to B inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowedValue<'a> {
    Literal(&'a str),
    Range(i64, i64),
}

impl<'a> AllowedValue<'a> {
    pub fn parse(raw: &'a str) -> Self {
        let range = raw.split_once('-').and_then(|(a, b)| {
            let digits =
                |s: &str| !s.is_empty() && s.len() <= 18 && s.bytes().all(|c| c.is_ascii_digit());
            if digits(a) && digits(b) {
                Some((a.parse().ok()?, b.parse().ok()?))
            } else {
                None
            }
        });
        match range {
            Some((lo, hi)) => Self::Range(lo, hi),
            None => Self::Literal(raw),
        }
    }

    /// Whether a client-supplied value is allowed; returns the value in canonical spelling.
    pub fn admits(&self, value: &str) -> Option<String> {
        match *self {
            Self::Literal(lit) => lit.eq_ignore_ascii_case(value).then(|| lit.to_owned()),
            Self::Range(lo, hi) => {
                let n = parse_integer(value)?;
                (lo..=hi).contains(&n).then(|| n.to_string())
            }
        }
    }
}

/// A strict decimal integer (optional sign, digits only, no spaces).
pub(crate) fn parse_integer(value: &str) -> Option<i64> {
    let digits = value.strip_prefix(['-', '+']).unwrap_or(value);
    if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// Something that makes a hierarchy unusable (checked by the admin command before it writes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HierarchyProblem(pub String);

impl std::fmt::Display for HierarchyProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether a client can send `text` as it is: a client's ids, parameter keys and values are
/// trimmed, put in NFC and capped before they are compared (§1.4), so a stored one with outer
/// spaces, another normal form, invisible characters or over the cap could never be matched,
/// and a default chosen from it would be a value the API refuses when sent.
fn sendable(text: &str) -> bool {
    crate::domain::clean_text(text, crate::registration::validate::MAX_TEXT)
        .is_ok_and(|clean| clean == text)
}

/// What `sendable` asks, for the admin's message.
const SENDABLE: &str = "1-100 characters, trimmed, in NFC, no control or invisible characters";

/// Codes become parts of DynamoDB sort keys: keep them to a safe alphabet.
fn valid_code(code: &str) -> bool {
    (1..=64).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Hierarchy {
    /// Finds a category by its code or its database id.
    pub fn category(&self, id: &str) -> Option<&Category> {
        self.categories
            .get(id)
            .or_else(|| self.categories.values().find(|c| c.database_id == id))
    }

    /// Every reason this hierarchy can't be served; empty when it is sound.
    pub fn problems(&self) -> Vec<HierarchyProblem> {
        let mut problems = Vec::new();
        let mut say = |s: String| problems.push(HierarchyProblem(s));
        if self.tenant_name.trim().is_empty() {
            say("tenantName is empty".into());
        }
        if self.categories.is_empty() {
            say("no categories".into());
        }
        let items = self.categories.len() + self.features.len();
        if items > MAX_HIERARCHY_ITEMS {
            say(format!(
                "{items} categories and features; at most {MAX_HIERARCHY_ITEMS}"
            ));
        }
        let bytes = serde_json::to_vec(self).map_or(usize::MAX, |json| json.len());
        if bytes > MAX_HIERARCHY_JSON_BYTES {
            say(format!(
                "{bytes} bytes of JSON; at most {MAX_HIERARCHY_JSON_BYTES}"
            ));
        }
        if let Some(default) = &self.default_category_id
            && !self.categories.contains_key(default)
        {
            say(format!("defaultCategoryId {default} is not a category"));
        }
        for (code, category) in &self.categories {
            if !valid_code(code) {
                say(format!(
                    "category code {code:?} is not 1-64 of [A-Za-z0-9_-]"
                ));
            }
            if &category.category_id != code {
                say(format!(
                    "category {code} has categoryId {}",
                    category.category_id
                ));
            }
            if !sendable(&category.database_id) {
                say(format!(
                    "category {code}: databaseId {:?} is not {SENDABLE}",
                    category.database_id
                ));
            }
            for feature in &category.available_features {
                if !self.features.contains_key(feature) {
                    say(format!("category {code} names unknown feature {feature}"));
                }
            }
            for feature in repeated(&category.available_features, |f| f.to_owned()) {
                say(format!("category {code} names feature {feature} twice"));
            }
        }
        for (code, feature) in &self.features {
            if !valid_code(code) {
                say(format!(
                    "feature code {code:?} is not 1-64 of [A-Za-z0-9_-]"
                ));
            }
            if &feature.feature_code != code {
                say(format!(
                    "feature {code} has featureCode {}",
                    feature.feature_code
                ));
            }
            if !sendable(&feature.database_id) {
                say(format!(
                    "feature {code}: databaseId {:?} is not {SENDABLE}",
                    feature.database_id
                ));
            }
            for (key, values) in &feature.allowed_values {
                if values.is_empty() {
                    say(format!("feature {code} key {key}: no allowed values"));
                }
                for value in values {
                    if looks_like_range(value)
                        && matches!(AllowedValue::parse(value), AllowedValue::Literal(_))
                    {
                        say(format!(
                            "feature {code} key {key}: {value:?} looks like a range but is not \"A-B\" with non-negative integers"
                        ));
                    }
                    if let AllowedValue::Range(lo, hi) = AllowedValue::parse(value)
                        && lo > hi
                    {
                        say(format!("feature {code} key {key}: range {value} is empty"));
                    }
                    if !sendable(value) {
                        say(format!(
                            "feature {code} key {key}: allowed value {value:?} is not {SENDABLE}"
                        ));
                    }
                }
            }
            for (list, keys) in [
                ("mandatoryKeys", &feature.mandatory_keys),
                ("multiValueKeys", &feature.multi_value_keys),
            ] {
                for key in repeated(keys, |k| k.to_owned()) {
                    say(format!("feature {code}: {list} names {key} twice"));
                }
            }
            for key in feature
                .allowed_values
                .keys()
                .chain(&feature.mandatory_keys)
                .chain(&feature.multi_value_keys)
            {
                if !sendable(key) {
                    say(format!("feature {code}: key {key:?} is not {SENDABLE}"));
                }
            }
            // Clients' keys are matched loosely (§3.3): two keys spelled alike would make one
            // of them unreachable.
            let keys: Vec<&String> = feature.allowed_values.keys().collect();
            for key in repeated(&keys, |k| normalize_key(k)) {
                say(format!(
                    "feature {code}: allowedValues has two keys spelled like {key}"
                ));
            }
            for key in feature
                .mandatory_keys
                .iter()
                .chain(&feature.multi_value_keys)
            {
                if !feature.allowed_values.contains_key(key) {
                    say(format!(
                        "feature {code}: key {key} has no allowedValues entry"
                    ));
                }
            }
        }
        let ids: Vec<&str> = self
            .categories
            .values()
            .map(|c| c.database_id.as_str())
            .chain(self.features.values().map(|f| f.database_id.as_str()))
            .collect();
        for id in repeated(&ids, |id| (*id).to_owned()) {
            say(format!("databaseId {id} is used twice"));
        }
        for category in self.categories.values() {
            if category.database_id != category.category_id
                && self.categories.contains_key(&category.database_id)
            {
                say(format!(
                    "databaseId {} of {} is another category's code",
                    category.database_id, category.category_id
                ));
            }
        }
        problems
    }
}

/// The entries that occur more than once in `list`, compared by `identity`, each named once.
fn repeated<T>(list: &[T], identity: impl Fn(&T) -> String) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    let mut twice = std::collections::BTreeSet::new();
    for entry in list {
        let id = identity(entry);
        if !seen.insert(id.clone()) {
            twice.insert(id);
        }
    }
    twice.into_iter().collect()
}

/// Digits and dashes with at least two numbers: meant as a range.
fn looks_like_range(value: &str) -> bool {
    let numbers = value
        .split('-')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>();
    numbers.len() >= 2
        && numbers
            .iter()
            .all(|part| part.bytes().all(|b| b.is_ascii_digit() || b == b'+'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_values_parse_ranges_and_literals() {
        let cases = [
            ("0-100", AllowedValue::Range(0, 100)),
            ("365-3650", AllowedValue::Range(365, 3650)),
            ("MEDIUM", AllowedValue::Literal("MEDIUM")),
            ("REAL_TIME", AllowedValue::Literal("REAL_TIME")),
            ("A-B", AllowedValue::Literal("A-B")),
            ("-5", AllowedValue::Literal("-5")),
            ("10-", AllowedValue::Literal("10-")),
        ];
        for (raw, expected) in cases {
            assert_eq!(AllowedValue::parse(raw), expected, "{raw:?}");
        }
    }

    #[test]
    fn supplied_values_are_checked_against_literals_and_ranges() {
        let cases = [
            ("0-100", "55", Some("55")),
            ("0-100", "0", Some("0")),
            ("0-100", "100", Some("100")),
            ("0-100", "101", None),
            ("0-100", "-1", None),
            ("0-100", "5.5", None),
            ("0-100", " 5", None),
            ("0-100", "abc", None),
            ("MEDIUM", "medium", Some("MEDIUM")),
            ("MEDIUM", "MEDIUMX", None),
        ];
        for (allowed, value, expected) in cases {
            assert_eq!(
                AllowedValue::parse(allowed).admits(value).as_deref(),
                expected,
                "{allowed} admits {value}"
            );
        }
    }

    #[test]
    fn the_demo_hierarchies_are_sound_and_broken_ones_are_caught() {
        let demo: serde_json::Value =
            serde_json::from_str(include_str!("../../../../shared/spec/demo-hierarchy.json"))
                .unwrap();
        for tenant in demo["tenants"].as_array().unwrap() {
            let h: Hierarchy = serde_json::from_value(tenant.clone()).unwrap();
            assert_eq!(h.problems(), vec![], "{}", h.tenant_id);
        }
        let mut broken: Hierarchy = serde_json::from_value(demo["tenants"][0].clone()).unwrap();
        broken.default_category_id = Some("NOPE".into());
        broken
            .categories
            .get_mut("LOW_RISK_INDIVIDUAL")
            .unwrap()
            .available_features
            .push("GHOST".into());
        broken
            .features
            .get_mut("MEDIUM_RISK_PROFILE")
            .unwrap()
            .allowed_values
            .insert("riskScore".into(), vec!["100-0".into()]);
        let ambiguous = broken.features.get_mut("TRANSACTION_LIMITS").unwrap();
        ambiguous.database_id = "e50bb9ad-6a97-41da-8e66-4c3c0f7e2a3d".into();
        ambiguous
            .allowed_values
            .insert("dailyLimit".into(), vec!["10 - 20".into()]);
        ambiguous
            .allowed_values
            .insert("weeklyLimit".into(), vec![]);
        let problems: Vec<String> = broken.problems().into_iter().map(|p| p.0).collect();
        assert_eq!(problems.len(), 6, "{problems:?}");
    }

    #[test]
    fn repeated_and_oversized_entries_are_problems() {
        let demo: serde_json::Value =
            serde_json::from_str(include_str!("../../../../shared/spec/demo-hierarchy.json"))
                .unwrap();
        let base: Hierarchy = serde_json::from_value(demo["tenants"][0].clone()).unwrap();
        type Change = fn(&mut Hierarchy);
        let cases: Vec<(&str, Change, &str)> = vec![
            (
                "feature named twice",
                |h| {
                    let c = h.categories.get_mut("LOW_RISK_INDIVIDUAL").unwrap();
                    let f = c.available_features[0].clone();
                    c.available_features.push(f);
                },
                "names feature TRANSACTION_LIMITS twice",
            ),
            (
                "mandatory key twice",
                |h| {
                    let f = h.features.get_mut("TRANSACTION_LIMITS").unwrap();
                    let k = f.mandatory_keys[0].clone();
                    f.mandatory_keys.push(k);
                },
                "mandatoryKeys names dailyLimit twice",
            ),
            (
                "keys spelled alike",
                |h| {
                    let f = h.features.get_mut("TRANSACTION_LIMITS").unwrap();
                    f.allowed_values
                        .insert("DAILY_LIMIT".into(), vec!["1".into()]);
                },
                "two keys spelled like dailylimit",
            ),
            (
                "an allowed value with a trailing space",
                |h| {
                    let f = h.features.get_mut("MEDIUM_RISK_PROFILE").unwrap();
                    f.allowed_values.get_mut("riskLevel").unwrap()[1] = "MEDIUM ".into();
                },
                "allowed value \"MEDIUM \" is not 1-100 characters, trimmed",
            ),
            (
                "an allowed value not in NFC",
                |h| {
                    let f = h.features.get_mut("MEDIUM_RISK_PROFILE").unwrap();
                    f.allowed_values.get_mut("riskLevel").unwrap()[0] = "LOWe\u{301}".into();
                },
                "is not 1-100 characters, trimmed, in NFC",
            ),
            (
                "an allowed value over 100 characters",
                |h| {
                    let f = h.features.get_mut("MEDIUM_RISK_PROFILE").unwrap();
                    f.allowed_values.get_mut("riskLevel").unwrap()[0] = "L".repeat(101);
                },
                "is not 1-100 characters",
            ),
            (
                "a key with a zero-width space",
                |h| {
                    let f = h.features.get_mut("MEDIUM_RISK_PROFILE").unwrap();
                    let values = f.allowed_values.remove("pep").unwrap();
                    f.allowed_values.insert("pep\u{200B}".into(), values);
                    f.mandatory_keys.retain(|k| k != "pep");
                },
                "key \"pep\\u{200b}\" is not",
            ),
            (
                "a databaseId with outer spaces",
                |h| {
                    let c = h.categories.get_mut("LOW_RISK_INDIVIDUAL").unwrap();
                    c.database_id = format!(" {} ", c.database_id);
                },
                "category LOW_RISK_INDIVIDUAL: databaseId",
            ),
            (
                "an empty feature databaseId",
                |h| {
                    h.features
                        .get_mut("TRANSACTION_LIMITS")
                        .unwrap()
                        .database_id = String::new()
                },
                "feature TRANSACTION_LIMITS: databaseId \"\" is not",
            ),
            (
                "too many items",
                |h| {
                    let template = h.features["TRANSACTION_LIMITS"].clone();
                    for i in 0..(MAX_HIERARCHY_ITEMS + 1 - 6) {
                        let mut f = template.clone();
                        f.feature_code = format!("F{i}");
                        f.database_id = format!("id-{i}");
                        h.features.insert(f.feature_code.clone(), f);
                    }
                },
                "100 categories and features; at most 99",
            ),
            (
                "too long",
                |h| {
                    let c = h.categories.get_mut("LOW_RISK_INDIVIDUAL").unwrap();
                    c.description = Some("x".repeat(MAX_HIERARCHY_JSON_BYTES));
                },
                "bytes of JSON; at most 262144",
            ),
        ];
        for (name, change, expected) in cases {
            let mut h = base.clone();
            change(&mut h);
            let problems: Vec<String> = h.problems().into_iter().map(|p| p.0).collect();
            assert_eq!(problems.len(), 1, "{name}: {problems:?}");
            assert!(problems[0].contains(expected), "{name}: {problems:?}");
        }
    }
}
