//! Tenant hierarchies: replaced in one transaction, read in one `Query`.

use async_trait::async_trait;

use super::{
    DynamoStore, Item, build_put, cancellation_codes, classify, from_item, n, number, s, text,
};
use crate::categorization::{Category, Feature, Hierarchy};
use crate::domain::TenantId;
use crate::store::{HierarchySource, StoreError, keys};

/// A replaced hierarchy.
#[derive(Debug)]
pub struct HierarchyPut {
    /// The header's new `version`.
    pub version: i64,
    /// Items written and deleted.
    pub item_writes: usize,
    /// Why deleting the items of earlier versions failed, if it did: readers skip them, and
    /// the next replacement deletes them.
    pub leftovers: Option<String>,
}

impl DynamoStore {
    /// Replaces a tenant's hierarchy: the tenant header and every category and feature item
    /// are put in one transaction (at most
    /// [`MAX_HIERARCHY_ITEMS`](crate::categorization::MAX_HIERARCHY_ITEMS) items, so within its 100
    /// actions), every item stamped with the header's new `version`, which also guards
    /// against a concurrent replacement. Items of earlier versions are deleted afterwards;
    /// until then readers skip them (see `assemble_hierarchy`), and a failed deletion is
    /// reported in the result, not as an error: the hierarchy is replaced.
    /// [`StoreError::ConditionFailed`]: another replacement won, or is under way; read again.
    pub async fn put_hierarchy(&self, hierarchy: &Hierarchy) -> Result<HierarchyPut, StoreError> {
        if let Some(problem) = hierarchy.problems().first() {
            return Err(StoreError::Unexpected(anyhow::anyhow!(
                "hierarchy of tenant {} is invalid: {problem}",
                hierarchy.tenant_id
            )));
        }
        let pk = keys::categorization_pk(&hierarchy.tenant_id);
        let existing = self.query_partition(&pk, true).await?;
        let current_version = existing
            .iter()
            .find(|item| text(item, keys::SK) == Some(keys::TENANT_SK))
            .and_then(|header| number(header, "version"));
        // Above every stamp too, so that every item left over (even from before a header
        // was deleted by hand) is older than this version: skipped by readers, then deleted.
        let highest_stamp = existing
            .iter()
            .filter_map(|item| number(item, HIERARCHY_VERSION))
            .max();

        let mut writes = Vec::new();
        let mut header = Item::new();
        header.insert("tenantId".into(), s(hierarchy.tenant_id.as_str()));
        header.insert("tenantName".into(), s(&hierarchy.tenant_name));
        if let Some(level) = &hierarchy.compliance_level {
            header.insert("complianceLevel".into(), s(level));
        }
        if let Some(default) = &hierarchy.default_category_id {
            header.insert("defaultCategoryId".into(), s(default));
        }
        let version = current_version.max(highest_stamp).unwrap_or(0) + 1;
        header.insert("version".into(), n(version));
        // With the stamps below, lets a reader tell a read that missed an item the
        // replacement added (every item it saw of the new version) from a whole one.
        header.insert(
            HIERARCHY_ITEMS.into(),
            n(hierarchy.categories.len() + hierarchy.features.len()),
        );
        let header_put = self.keyed_put(&pk, keys::TENANT_SK, header, "TENANT");
        let header_put = match current_version {
            None => header_put.condition_expression("attribute_not_exists(PK)"),
            Some(v) => header_put
                .condition_expression("version = :v")
                .expression_attribute_values(":v", n(v)),
        };
        writes.push(build_put(header_put)?);

        // Every item carries the header's version, so a reader that meets items of two
        // replacements (a Query is not isolated from the transaction) can tell.
        let stamped = |mut item: Item| {
            item.insert(HIERARCHY_VERSION.into(), n(version));
            item
        };
        for (code, category) in &hierarchy.categories {
            let sk = keys::category_sk(code);
            let put = self.keyed_put(&pk, &sk, stamped(json_item(category)?), "CATEGORY");
            writes.push(build_put(put)?);
        }
        for (code, feature) in &hierarchy.features {
            let sk = keys::feature_sk(code);
            let put = self.keyed_put(&pk, &sk, stamped(json_item(feature)?), "FEATURE");
            writes.push(build_put(put)?);
        }
        let written = writes.len();
        self.client
            .transact_write_items()
            .set_transact_items(Some(writes))
            // An SDK retry after a lost answer then gets the first outcome, not a false
            // "concurrent replacement" from its own header write (moto ignores tokens).
            .client_request_token(uuid::Uuid::new_v4().to_string())
            .send()
            .await
            .map_err(|err| match cancellation_codes(&err) {
                // Another replacement finished first, or is under way (its transaction holds
                // one of the items: DynamoDB cancels this one rather than wait).
                Some(codes)
                    if codes
                        .iter()
                        .any(|c| c == "ConditionalCheckFailed" || c == "TransactionConflict") =>
                {
                    StoreError::ConditionFailed
                }
                _ => classify(err),
            })?;
        Ok(match self.delete_hierarchy_leftovers(&pk, version).await {
            Ok(deleted) => HierarchyPut {
                version,
                item_writes: written + deleted,
                leftovers: None,
            },
            Err(e) => HierarchyPut {
                version,
                item_writes: written,
                leftovers: Some(e.detail()),
            },
        })
    }

    /// Deletes the category and feature items of versions before `version`: those the
    /// replacement did not rewrite, and any an earlier replacement missed (a Query is not
    /// isolated from a transaction under way). Each delete is conditional, so an item a
    /// later replacement has rewritten meanwhile stays.
    async fn delete_hierarchy_leftovers(
        &self,
        pk: &str,
        version: i64,
    ) -> Result<usize, StoreError> {
        let mut deleted = 0;
        for item in self.query_partition(pk, true).await? {
            let Some(sk) = text(&item, keys::SK) else {
                continue;
            };
            if sk == keys::TENANT_SK
                || number(&item, HIERARCHY_VERSION).is_some_and(|v| v >= version)
            {
                continue;
            }
            let outcome = self
                .client
                .delete_item()
                .table_name(&self.table)
                .key(keys::PK, s(pk))
                .key(keys::SK, s(sk))
                .condition_expression("attribute_not_exists(#stamp) OR #stamp < :version")
                .expression_attribute_names("#stamp", HIERARCHY_VERSION)
                .expression_attribute_values(":version", n(version))
                .send()
                .await;
            match outcome {
                Ok(_) => deleted += 1,
                Err(err)
                    if err.as_service_error().is_some_and(
                        aws_sdk_dynamodb::operation::delete_item::DeleteItemError::is_conditional_check_failed_exception,
                    ) => {}
                Err(err) => return Err(classify(err)),
            }
        }
        Ok(deleted)
    }

    async fn query_partition(&self, pk: &str, consistent: bool) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("PK = :pk")
                .expression_attribute_values(":pk", s(pk))
                .consistent_read(consistent)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(classify)?;
            items.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }
}

/// The attribute holding a category's or feature's JSON (its shape in §2's `data`).
///
/// One string instead of a tree of typed attributes: a hierarchy lookup reads and parses every
/// item of the partition, and DynamoDB-typed JSON of nested maps and lists is about three
/// times the size of plain JSON and one `AttributeValue` per leaf to build and walk. moto,
/// which the bench measures against, took 16.5 ms to answer the demo tenant's Query with
/// typed items and ~4 ms with JSON strings.
const ITEM_JSON: &str = "json";

/// An item whose only attribute is `value`'s JSON (keys and stamps are added by the caller).
fn json_item<T: serde::Serialize>(value: &T) -> Result<Item, StoreError> {
    let json = serde_json::to_string(value).map_err(|e| StoreError::Unexpected(e.into()))?;
    Ok([(ITEM_JSON.to_owned(), s(json))].into())
}

/// A category or feature from its item: its JSON, or, written before items held their JSON,
/// its typed attributes.
fn from_json_item<T: serde::de::DeserializeOwned>(item: Item) -> Result<T, StoreError> {
    match item.get(ITEM_JSON).and_then(|v| v.as_s().ok()) {
        Some(json) => serde_json::from_str(json).map_err(|e| StoreError::Unexpected(e.into())),
        None => from_item(item),
    }
}

/// The attribute stamping category and feature items with their hierarchy's `version`.
const HIERARCHY_VERSION: &str = "hierarchyVersion";

/// The header's count of the hierarchy's category and feature items.
const HIERARCHY_ITEMS: &str = "itemCount";

/// Reads of a hierarchy that met a replacement half-way are repeated this often.
const MIXED_READ_RETRIES: u32 = 3;

#[async_trait]
impl HierarchySource for DynamoStore {
    async fn load_hierarchy(&self, tenant: &TenantId) -> Result<Option<Hierarchy>, StoreError> {
        let pk = keys::categorization_pk(tenant);
        let mut tries = 0;
        loop {
            let items = self.query_partition(&pk, false).await?;
            match assemble_hierarchy(tenant, items)? {
                Assembled::Whole(hierarchy) => return Ok(hierarchy),
                Assembled::Mixed if tries < MIXED_READ_RETRIES => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50 * u64::from(tries)))
                        .await;
                }
                // Still mid-replacement: better a 503 than a hierarchy that never existed,
                // cached for the TTL.
                Assembled::Mixed => {
                    return Err(StoreError::Unavailable(anyhow::anyhow!(
                        "the hierarchy is being replaced: items of two versions"
                    )));
                }
            }
        }
    }
}

/// A hierarchy Query's items put together.
#[derive(Debug)]
enum Assembled {
    /// One version throughout (`None`: no hierarchy stored).
    Whole(Option<Hierarchy>),
    /// Items of more than one replacement: read again.
    Mixed,
}

/// Puts a hierarchy together from its partition's items.
///
/// A header that counts its items (`itemCount`) belongs to a hierarchy whose items are all
/// stamped with its `version`: those are the hierarchy; items stamped lower (or not at all)
/// are leftovers of an earlier one that a replacement has not deleted yet, and are skipped.
/// An item stamped higher, or fewer items than counted, means the read met a replacement
/// half-way. A header written before items were counted has its unstamped items and those
/// of its version taken, and any other stamp means a read half-way through a replacement.
fn assemble_hierarchy(tenant: &TenantId, items: Vec<Item>) -> Result<Assembled, StoreError> {
    let (headers, items): (Vec<Item>, Vec<Item>) = items
        .into_iter()
        .partition(|item| item.get(keys::SK) == Some(&s(keys::TENANT_SK)));
    let Some(header) = headers.into_iter().next() else {
        // Items without a header: the first write of a hierarchy is under way.
        return Ok(if items.is_empty() {
            Assembled::Whole(None)
        } else {
            Assembled::Mixed
        });
    };
    let header_version = number(&header, "version").unwrap_or_default();
    let counted = number(&header, HIERARCHY_ITEMS);
    let mut categories = std::collections::BTreeMap::new();
    let mut features = std::collections::BTreeMap::new();
    for mut item in items {
        let stamp = item.remove(HIERARCHY_VERSION).map(|v| {
            v.as_n()
                .ok()
                .and_then(|n| n.parse::<i64>().ok())
                .unwrap_or(i64::MAX)
        });
        match (counted, stamp) {
            (Some(_), Some(v)) if v == header_version => {}
            (Some(_), Some(v)) if v > header_version => return Ok(Assembled::Mixed),
            (Some(_), _) => continue,
            (None, Some(v)) if v != header_version => return Ok(Assembled::Mixed),
            (None, _) => {}
        }
        let sk = text(&item, keys::SK).unwrap_or_default().to_owned();
        if sk.starts_with("CATEGORY#") {
            let category: Category = from_json_item(item)?;
            categories.insert(category.category_id.clone(), category);
        } else if sk.starts_with("FEATURE#") {
            let feature: Feature = from_json_item(item)?;
            features.insert(feature.feature_code.clone(), feature);
        }
    }
    let items = categories.len() + features.len();
    if counted.is_some_and(|n| usize::try_from(n) != Ok(items)) {
        return Ok(Assembled::Mixed);
    }
    let text = |name: &str| header.get(name).and_then(|v| v.as_s().ok()).cloned();
    Ok(Assembled::Whole(Some(Hierarchy {
        tenant_id: tenant.clone(),
        tenant_name: text("tenantName").unwrap_or_default(),
        compliance_level: text("complianceLevel"),
        default_category_id: text("defaultCategoryId"),
        categories,
        features,
    })))
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::AttributeValue;

    use crate::store::dynamodb::client::client_of;
    use crate::store::dynamodb::to_item;

    use super::*;

    /// DynamoDB cancels a replacement whose transaction meets another one's on an item
    /// (`TransactionConflict`) rather than wait: like a replacement that lost the version
    /// race, it is told to read again. moto applies requests one at a time and never answers
    /// it, so the answers are given here.
    #[tokio::test]
    async fn a_replacement_meeting_another_under_way_is_told_to_read_again() {
        let demo: serde_json::Value = serde_json::from_str(include_str!(
            "../../../../../shared/spec/demo-hierarchy.json"
        ))
        .unwrap();
        let hierarchy: Hierarchy = serde_json::from_value(demo["tenants"][0].clone()).unwrap();
        let cancelled = |reason: &'static str| -> &'static str {
            Box::leak(
                format!(
                    r#"{{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","Message":"Transaction cancelled","CancellationReasons":[{{"Code":"None"}},{{"Code":"{reason}"}}]}}"#
                )
                .into_boxed_str(),
            )
        };
        let empty = ("200 OK", r#"{"Count":0,"ScannedCount":0,"Items":[]}"#);
        for (reason, told_to_read_again) in [
            ("TransactionConflict", true),
            ("ConditionalCheckFailed", true),
            ("ValidationError", false),
        ] {
            let url =
                crate::testing::answering(vec![empty, ("400 Bad Request", cancelled(reason))])
                    .await;
            let store = DynamoStore::new(client_of(url, 1), "t");
            let error = store.put_hierarchy(&hierarchy).await.unwrap_err();
            assert_eq!(
                matches!(error, StoreError::ConditionFailed),
                told_to_read_again,
                "{reason}: {error:?}"
            );
        }
    }

    #[test]
    fn a_hierarchy_read_half_way_through_a_replacement_is_read_again() {
        let tenant = TenantId::parse("t1").unwrap();
        let item = |sk: &str, version: Option<&str>| -> Item {
            let mut item = match sk.split_once('#') {
                Some(("CATEGORY", code)) => to_item(&Category {
                    database_id: format!("db-{code}"),
                    category_id: code.into(),
                    category_name: code.into(),
                    description: None,
                    available_features: vec!["F".into()],
                })
                .unwrap(),
                Some(("FEATURE", code)) => json_item(&Feature {
                    database_id: format!("db-{code}"),
                    feature_code: code.into(),
                    feature_name: code.into(),
                    description: None,
                    mandatory_keys: vec![],
                    allowed_values: Default::default(),
                    multi_value_keys: vec![],
                })
                .unwrap(),
                _ => [("tenantName".to_owned(), s("T"))].into_iter().collect(),
            };
            if let Some(count) = sk.strip_prefix("TENANT/") {
                item.insert(HIERARCHY_ITEMS.into(), AttributeValue::N(count.into()));
            }
            let sk = if sk.starts_with("TENANT/") {
                keys::TENANT_SK
            } else {
                sk
            };
            item.insert(keys::SK.into(), s(sk));
            let attribute = if sk == keys::TENANT_SK {
                "version"
            } else {
                HIERARCHY_VERSION
            };
            if let Some(v) = version {
                item.insert(attribute.into(), AttributeValue::N(v.into()));
            }
            item
        };
        let whole = |items: Vec<Item>| match assemble_hierarchy(&tenant, items).unwrap() {
            Assembled::Whole(h) => Some(h.map(|h| (h.categories.len(), h.features.len()))),
            Assembled::Mixed => None,
        };
        let (header, cat, feat) = (keys::TENANT_SK, "CATEGORY#C", "FEATURE#F");
        let cases = [
            (vec![], Some(None)),
            (
                vec![
                    item(header, Some("2")),
                    item(cat, Some("2")),
                    item(feat, Some("2")),
                ],
                Some(Some((1, 1))),
            ),
            // Written before items were stamped.
            (
                vec![item(header, Some("2")), item(cat, None), item(feat, None)],
                Some(Some((1, 1))),
            ),
            // The new header with an old feature, or the reverse.
            (
                vec![
                    item(header, Some("3")),
                    item(cat, Some("3")),
                    item(feat, Some("2")),
                ],
                None,
            ),
            (
                vec![
                    item(header, Some("2")),
                    item(cat, Some("3")),
                    item(feat, Some("2")),
                ],
                None,
            ),
            // The first hierarchy's items before its header.
            (vec![item(cat, Some("1"))], None),
            // A header counting its items: all there, or one the read has not seen yet (an
            // item the replacement added; all it saw are of the new version).
            (
                vec![
                    item("TENANT/2", Some("3")),
                    item(cat, Some("3")),
                    item(feat, Some("3")),
                ],
                Some(Some((1, 1))),
            ),
            (
                vec![
                    item("TENANT/3", Some("3")),
                    item(cat, Some("3")),
                    item(feat, Some("3")),
                ],
                None,
            ),
            // Leftovers of earlier versions, stamped or not, are skipped...
            (
                vec![
                    item("TENANT/2", Some("3")),
                    item(cat, Some("3")),
                    item(feat, Some("3")),
                    item("CATEGORY#OLD", Some("2")),
                    item("FEATURE#OLDER", None),
                ],
                Some(Some((1, 1))),
            ),
            // ...but not an item of a later one, nor one the replacement rewrote, read old.
            (
                vec![
                    item("TENANT/2", Some("3")),
                    item(cat, Some("3")),
                    item(feat, Some("3")),
                    item("CATEGORY#NEW", Some("4")),
                ],
                None,
            ),
            (
                vec![
                    item("TENANT/2", Some("3")),
                    item(cat, Some("3")),
                    item(feat, Some("2")),
                ],
                None,
            ),
        ];
        for (items, expected) in cases {
            let described = format!("{items:?}");
            assert_eq!(whole(items), expected, "{described}");
        }
    }

    #[test]
    fn hierarchy_items_are_read_from_either_layout() {
        let mut allowed_values = std::collections::BTreeMap::new();
        allowed_values.insert("riskScore".to_owned(), vec!["0-100".to_owned()]);
        allowed_values.insert(
            "pep".to_owned(),
            vec!["true".to_owned(), "false".to_owned()],
        );
        let feature = Feature {
            database_id: "db-F".into(),
            feature_code: "F".into(),
            feature_name: "Feature F".into(),
            description: Some("Ünïcode \"quoted\"".into()),
            mandatory_keys: vec!["riskScore".into(), "pep".into()],
            allowed_values,
            multi_value_keys: vec!["pep".into()],
        };
        let stored = |mut item: Item| {
            item.insert(keys::PK.into(), s("TENANT#t1#CATEGORIZATION"));
            item.insert(keys::SK.into(), s("FEATURE#F"));
            item.insert("entityType".into(), s("FEATURE"));
            item.insert(HIERARCHY_VERSION.into(), n(3));
            item
        };
        let json = stored(json_item(&feature).unwrap());
        assert_eq!(
            json.len(),
            5,
            "keys, type, stamp and one JSON string: {json:?}"
        );
        let typed = stored(to_item(&feature).unwrap());
        for item in [json, typed] {
            assert_eq!(from_json_item::<Feature>(item).unwrap(), feature);
        }
        let broken = stored([(ITEM_JSON.to_owned(), s("{\"featureCode\": 1"))].into());
        assert!(from_json_item::<Feature>(broken).is_err());
    }
}
