//! The DynamoDB adapter of the storage port: the only place that knows attribute names, key
//! formats (via `keys`) and how SDK errors map onto `StoreError`.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use secrecy::ExposeSecret;

use super::{CustomerStore, HierarchySource, NewCustomer, StoreError, keys};
use crate::categorization::{Category, Feature, Hierarchy};
use crate::domain::TenantId;

type Item = HashMap<String, AttributeValue>;

/// Builds the SDK client once per cold start: region and credentials from the environment
/// (the Lambda's role in AWS; `AWS_ENDPOINT_URL_DYNAMODB` points it at moto locally), bounded
/// retries and timeouts so a function answers before the gateway's 30 s limit.
pub async fn client_from_env() -> Client {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(3))
        .operation_timeout(Duration::from_secs(8))
        .build();
    let retries = aws_config::retry::RetryConfig::standard().with_max_attempts(3);
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts)
        .retry_config(retries)
        .load()
        .await;
    Client::new(&config)
}

/// The single-table store.
#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// Maps an SDK error: throttling, 5xx, timeouts and broken connections are `Unavailable` (the
/// client may retry); everything else is `Unexpected`. The full context goes into the error
/// for the log, never to the client.
fn classify<E>(err: SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let unavailable = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => {
            service.raw().status().is_server_error()
                || matches!(
                    service.err().code(),
                    Some(
                        "ProvisionedThroughputExceededException"
                            | "ThrottlingException"
                            | "RequestLimitExceeded"
                            | "InternalServerError"
                            | "ServiceUnavailable"
                    )
                )
        }
        _ => false,
    };
    let cause = anyhow::anyhow!("{}", DisplayErrorContext(&err));
    if unavailable {
        StoreError::Unavailable(cause)
    } else {
        StoreError::Unexpected(cause)
    }
}

fn to_item<T: serde::Serialize>(value: &T) -> Result<Item, StoreError> {
    serde_dynamo::to_item(value).map_err(|e| StoreError::Unexpected(e.into()))
}

fn from_item<T: serde::de::DeserializeOwned>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Unexpected(e.into()))
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Replaces a tenant's hierarchy in one transaction: every category and feature item is
    /// put, stale ones deleted, and the tenant header's `version` guards against a concurrent
    /// replacement. Hierarchies are small; more than 100 items is refused.
    pub async fn put_hierarchy(&self, hierarchy: &Hierarchy) -> Result<usize, StoreError> {
        let pk = keys::categorization_pk(&hierarchy.tenant_id);
        let existing = self.query_partition(&pk).await?;
        let current_version = existing
            .iter()
            .find(|item| item.get(keys::SK) == Some(&s(keys::TENANT_SK)))
            .and_then(|item| item.get("version"))
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<u64>().ok());

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
        header.insert("version".into(), n(current_version.unwrap_or(0) + 1));
        let header_put = self.keyed_put(&pk, keys::TENANT_SK, header, "TENANT");
        let header_put = match current_version {
            None => header_put.condition_expression("attribute_not_exists(PK)"),
            Some(v) => header_put
                .condition_expression("version = :v")
                .expression_attribute_values(":v", n(v)),
        };
        writes.push(build_put(header_put)?);

        let mut wanted_sks = vec![keys::TENANT_SK.to_owned()];
        for (code, category) in &hierarchy.categories {
            let sk = keys::category_sk(code);
            let put = self.keyed_put(&pk, &sk, to_item(category)?, "CATEGORY");
            writes.push(build_put(put)?);
            wanted_sks.push(sk);
        }
        for (code, feature) in &hierarchy.features {
            let sk = keys::feature_sk(code);
            let put = self.keyed_put(&pk, &sk, to_item(feature)?, "FEATURE");
            writes.push(build_put(put)?);
            wanted_sks.push(sk);
        }
        for item in &existing {
            let Some(sk) = item.get(keys::SK).and_then(|v| v.as_s().ok()) else {
                continue;
            };
            if !wanted_sks.contains(sk) {
                let delete = Delete::builder()
                    .table_name(&self.table)
                    .key(keys::PK, s(&pk))
                    .key(keys::SK, s(sk))
                    .build()
                    .map_err(|e| StoreError::Unexpected(e.into()))?;
                writes.push(TransactWriteItem::builder().delete(delete).build());
            }
        }
        if writes.len() > 100 {
            return Err(StoreError::Unexpected(anyhow::anyhow!(
                "hierarchy needs {} writes; one transaction takes 100",
                writes.len()
            )));
        }
        let count = writes.len();
        self.client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .send()
            .await
            .map_err(|err| match cancellation_codes(&err) {
                Some(codes) if codes.iter().any(|c| c == "ConditionalCheckFailed") => {
                    StoreError::ConditionFailed
                }
                _ => classify(err),
            })?;
        Ok(count)
    }

    fn keyed_put(
        &self,
        pk: &str,
        sk: &str,
        mut item: Item,
        entity: &str,
    ) -> aws_sdk_dynamodb::types::builders::PutBuilder {
        item.insert(keys::PK.into(), s(pk));
        item.insert(keys::SK.into(), s(sk));
        item.insert("entityType".into(), s(entity));
        Put::builder().table_name(&self.table).set_item(Some(item))
    }

    async fn query_partition(&self, pk: &str) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("PK = :pk")
                .expression_attribute_values(":pk", s(pk))
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

fn build_put(
    put: aws_sdk_dynamodb::types::builders::PutBuilder,
) -> Result<TransactWriteItem, StoreError> {
    let put = put.build().map_err(|e| StoreError::Unexpected(e.into()))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// The per-item cancellation reason codes of a cancelled transaction.
fn cancellation_codes(
    err: &SdkError<TransactWriteItemsError, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> Option<Vec<String>> {
    match err.as_service_error()? {
        TransactWriteItemsError::TransactionCanceledException(cancelled) => Some(
            cancelled
                .cancellation_reasons()
                .iter()
                .map(|r| r.code().unwrap_or("None").to_owned())
                .collect(),
        ),
        _ => None,
    }
}

#[async_trait]
impl HierarchySource for DynamoStore {
    async fn load_hierarchy(&self, tenant: &TenantId) -> Result<Option<Hierarchy>, StoreError> {
        let items = self
            .query_partition(&keys::categorization_pk(tenant))
            .await?;
        let mut header: Option<Item> = None;
        let mut categories = std::collections::BTreeMap::new();
        let mut features = std::collections::BTreeMap::new();
        for item in items {
            let sk = item
                .get(keys::SK)
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default();
            if sk == keys::TENANT_SK {
                header = Some(item);
            } else if sk.starts_with("CATEGORY#") {
                let category: Category = from_item(item)?;
                categories.insert(category.category_id.clone(), category);
            } else if sk.starts_with("FEATURE#") {
                let feature: Feature = from_item(item)?;
                features.insert(feature.feature_code.clone(), feature);
            }
        }
        let Some(header) = header else {
            return Ok(None);
        };
        let text = |name: &str| header.get(name).and_then(|v| v.as_s().ok()).cloned();
        Ok(Some(Hierarchy {
            tenant_id: tenant.clone(),
            tenant_name: text("tenantName").unwrap_or_default(),
            compliance_level: text("complianceLevel"),
            default_category_id: text("defaultCategoryId"),
            categories,
            features,
        }))
    }
}

/// Transactions that lose to a concurrent transaction on the same item are retried this often.
const CONFLICT_RETRIES: u32 = 3;

#[async_trait]
impl CustomerStore for DynamoStore {
    async fn create_customer(&self, new: &NewCustomer) -> Result<(), StoreError> {
        let customer = &new.customer;
        let tenant = &customer.tenant_id;
        let (customer_pk, customer_sk) = keys::customer(tenant, &customer.id);
        let (email_pk, email_sk) = keys::email(tenant, &new.email_normalized);

        let mut item = to_item(customer)?;
        item.insert("passwordHash".into(), s(new.password_hash.expose_secret()));
        item.insert("emailNormalized".into(), s(&new.email_normalized));
        item.insert("version".into(), n(1));
        let customer_put = self
            .keyed_put(&customer_pk, customer_sk, item, "CUSTOMER")
            .condition_expression("attribute_not_exists(PK)");

        let mut marker = Item::new();
        marker.insert("tenantId".into(), s(tenant.as_str()));
        marker.insert("customerId".into(), s(&customer.id));
        marker.insert(
            "createdAt".into(),
            s(crate::registration::timestamp(customer.created_at)),
        );
        let email_put = self
            .keyed_put(&email_pk, email_sk, marker, "EMAIL")
            .condition_expression("attribute_not_exists(PK)");
        let writes = vec![build_put(customer_put)?, build_put(email_put)?];

        let mut attempt = 0;
        loop {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(writes.clone()))
                .send()
                .await;
            let Err(err) = result else {
                return Ok(());
            };
            match cancellation_codes(&err) {
                Some(codes) if codes.iter().any(|c| c == "ConditionalCheckFailed") => {
                    return Err(StoreError::AlreadyExists);
                }
                Some(codes) if codes.iter().any(|c| c == "TransactionConflict") => {
                    if attempt == CONFLICT_RETRIES {
                        return Err(StoreError::Unavailable(anyhow::anyhow!(
                            "transaction conflict persisted after {attempt} retries"
                        )));
                    }
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
                }
                Some(codes)
                    if codes.iter().any(|c| {
                        c == "ThrottlingError" || c == "ProvisionedThroughputExceeded"
                    }) =>
                {
                    return Err(StoreError::Unavailable(anyhow::anyhow!(
                        "transaction throttled: {codes:?}"
                    )));
                }
                _ => return Err(classify(err)),
            }
        }
    }
}
