//! The DynamoDB adapter of the storage port: the only place that knows attribute names, key
//! formats (via `keys`) and how SDK errors map onto `StoreError`.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use secrecy::ExposeSecret;

use super::{CustomerStore, HierarchySource, NewCustomer, StoreError, keys};
use crate::activation::rules::ResendHistory;
use crate::activation::{ActivationAttempt, ActivationOutcome, ActivationState, IssuedCode};
use crate::categorization::{Category, Feature, Hierarchy};
use crate::domain::TenantId;
use crate::registration::CustomerStatus;

type Item = HashMap<String, AttributeValue>;

/// Builds the SDK client once per cold start: region and credentials from the environment
/// (the Lambda's role in AWS; `AWS_ENDPOINT_URL_DYNAMODB` points it at moto locally), bounded
/// retries and timeouts so a function answers before the gateway's 30 s limit.
pub async fn client_from_env() -> Client {
    client(&aws_config_from_env().await)
}

/// The DynamoDB client of a loaded configuration, counting its round trips and retries.
pub fn client(aws: &aws_config::SdkConfig) -> Client {
    let config = aws_sdk_dynamodb::config::Builder::from(aws)
        .interceptor(RoundTrips)
        .build();
    Client::from_conf(config)
}

/// Counts every HTTP attempt (`DynamoDbRequests`) and every retry (`DynamoDbRetries`) as EMF
/// metrics of the invocation (no-ops where no metrics recorder is installed).
#[derive(Debug)]
struct RoundTrips;

impl aws_sdk_dynamodb::config::Intercept for RoundTrips {
    fn name(&self) -> &'static str {
        "RoundTrips"
    }

    fn read_before_transmit(
        &self,
        _context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_sdk_dynamodb::config::RuntimeComponents,
        cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        metrics::counter!("DynamoDbRequests").increment(1);
        let attempt = cfg
            .load::<aws_smithy_runtime_api::client::retries::RequestAttempts>()
            .map(|a| a.attempts())
            .unwrap_or(1);
        if attempt > 1 {
            metrics::counter!("DynamoDbRetries").increment(1);
        }
        Ok(())
    }
}

/// Amazon Trust Services roots: every AWS endpoint chains to one of them. Trusting only these
/// spares each cold start the parse of the system's whole CA bundle (measured by `make bench`:
/// ~3 ms of a ~6 ms init). `TLS_TRUST_STORE=native` restores the system store (a proxy or a
/// private CA in front of AWS).
const AMAZON_ROOTS: [&str; 4] = [
    include_str!("../../certs/Amazon_Root_CA_1.pem"),
    include_str!("../../certs/Amazon_Root_CA_2.pem"),
    include_str!("../../certs/Amazon_Root_CA_3.pem"),
    include_str!("../../certs/Amazon_Root_CA_4.pem"),
];

fn https_client() -> Option<aws_smithy_runtime_api::client::http::SharedHttpClient> {
    use aws_smithy_http_client::tls;
    if std::env::var("TLS_TRUST_STORE").is_ok_and(|v| v == "native") {
        return None;
    }
    let trust = AMAZON_ROOTS
        .iter()
        .fold(tls::TrustStore::empty(), |store, pem| {
            store.with_pem_certificate(pem.as_bytes())
        });
    let context = tls::TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .ok()?;
    Some(
        aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::AwsLc,
            ))
            .tls_context(context)
            .build_https(),
    )
}

/// The shared SDK configuration (DynamoDB and SES clients are built from one load).
pub async fn aws_config_from_env() -> aws_config::SdkConfig {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(3))
        .operation_timeout(Duration::from_secs(8))
        .build();
    let retries = aws_config::retry::RetryConfig::standard().with_max_attempts(3);
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts)
        .retry_config(retries);
    if let Some(client) = https_client() {
        loader = loader.http_client(client);
    }
    // Lambda hands a function its region and its role's credentials as environment
    // variables: taking them from there spares every cold start the default provider chains
    // (profile files, SSO, web identity, ECS, IMDS). Without them, the chains apply as usual.
    if let Ok(region) = std::env::var("AWS_REGION") {
        loader = loader.region(aws_config::Region::new(region));
    }
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
        loader = loader.credentials_provider(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        );
    }
    loader.load().await
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

/// Whether a later try of a failed AWS call may succeed: no answer in time, no connection, an
/// unreadable answer, a 5xx, or a service error with one of `codes` (the service's throttling
/// and its own failures).
pub(crate) fn transient<E: ProvideErrorMetadata>(
    err: &SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
    codes: &[&str],
) -> bool {
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => {
            service.raw().status().is_server_error()
                || service
                    .err()
                    .code()
                    .is_some_and(|code| codes.contains(&code))
        }
        _ => false,
    }
}

/// Maps an SDK error: throttling, 5xx, timeouts and broken connections are `Unavailable` (the
/// client may retry); everything else is `Unexpected`. The full context goes into the error
/// for the log, never to the client.
fn classify<E>(err: SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let unavailable = transient(
        &err,
        &[
            "ProvisionedThroughputExceededException",
            "ThrottlingException",
            "RequestLimitExceeded",
            "InternalServerError",
            "ServiceUnavailable",
            // A retry of a transaction (same token) that DynamoDB is still running: its
            // outcome is not known yet.
            "TransactionInProgressException",
            // A single write to an item that a transaction is writing: the SDK does not
            // retry it, a later request may succeed.
            "TransactionConflictException",
        ],
    );
    // Only the error's kind, code, message and status: never the raw response, which for a
    // conditional failure can carry the item (personal data, hashes).
    let cause = match &err {
        SdkError::ServiceError(service) => anyhow::anyhow!(
            "DynamoDB service error {} (HTTP {}): {}",
            service.err().code().unwrap_or("unknown"),
            service.raw().status().as_u16(),
            service.err().message().unwrap_or("")
        ),
        SdkError::TimeoutError(_) => anyhow::anyhow!("DynamoDB call timed out"),
        SdkError::DispatchFailure(failure) => anyhow::anyhow!(
            "DynamoDB dispatch failure (io: {}, timeout: {})",
            failure.is_io(),
            failure.is_timeout()
        ),
        SdkError::ResponseError(_) => anyhow::anyhow!("DynamoDB response could not be read"),
        _ => anyhow::anyhow!("DynamoDB request could not be built"),
    };
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

    /// Replaces a tenant's hierarchy: the tenant header and every category and feature item
    /// are put in one transaction (at most
    /// [`MAX_HIERARCHY_ITEMS`](crate::categorization::MAX_HIERARCHY_ITEMS) items, so within its 100
    /// actions), every item stamped with the header's new `version`, which also guards
    /// against a concurrent replacement. Items of earlier versions are deleted afterwards;
    /// until then readers skip them (see `assemble_hierarchy`). Returns the items written
    /// and deleted. [`StoreError::ConditionFailed`]: another replacement won; read again.
    pub async fn put_hierarchy(&self, hierarchy: &Hierarchy) -> Result<usize, StoreError> {
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
                Some(codes) if codes.iter().any(|c| c == "ConditionalCheckFailed") => {
                    StoreError::ConditionFailed
                }
                _ => classify(err),
            })?;
        let deleted = self
            .delete_hierarchy_leftovers(&pk, version)
            .await
            .map_err(|e| {
                StoreError::Unexpected(anyhow::anyhow!(
                    "the hierarchy was replaced (version {version}), but deleting the items \
                     it replaced failed ({e}); readers skip them, and the next put deletes them"
                ))
            })?;
        Ok(written + deleted)
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

/// Transactions that lose to a concurrent transaction on the same item are retried this often.
const CONFLICT_RETRIES: u32 = 3;

/// A transaction found still running is asked for its outcome this often (after 50, 100, …
/// 250 ms: 750 ms in all) before its outcome counts as unknown.
const IN_PROGRESS_RETRIES: u32 = 5;

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
        item.insert("codeKeys".into(), code_keys(&new.code));
        item.insert("codeIssuedAt".into(), n(limit_seconds(new.code.issued_at)));
        item.insert("codeExpiresAt".into(), n(new.code.expires_at.timestamp()));
        item.insert("codeAttempts".into(), n(0));
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
        let mut writes = vec![build_put(customer_put)?, build_put(email_put)?];
        if let Some(completion) = &new.idempotency {
            writes.push(
                TransactWriteItem::builder()
                    .update(self.completion_update(completion)?)
                    .build(),
            );
        }

        let mut attempt = 0;
        let mut waited = 0;
        let mut token = uuid::Uuid::new_v4().to_string();
        loop {
            // The SDK retries a request whose response was lost; the token makes DynamoDB
            // answer such a retry with the first outcome instead of a conditional failure
            // against our own write. A fresh token for each of our own conflict retries.
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(writes.clone()))
                .client_request_token(&token)
                .send()
                .await;
            let Err(err) = result else {
                return Ok(());
            };
            // An SDK retry met this transaction still running (the first try's answer was
            // lost): asked again with the same token once it is done, DynamoDB answers with
            // its outcome. A read now would see it unapplied, and answer 503 for a customer
            // stored a moment later.
            if err.as_service_error().and_then(ProvideErrorMetadata::code)
                == Some("TransactionInProgressException")
                && waited < IN_PROGRESS_RETRIES
            {
                waited += 1;
                tokio::time::sleep(Duration::from_millis(50 * u64::from(waited))).await;
                continue;
            }
            match cancellation_codes(&err) {
                // Customer and marker first: a taken e-mail is a conflict; the idempotency
                // update (third) failing alone means another request took the claim over.
                Some(codes) if codes.iter().take(2).any(|c| c == "ConditionalCheckFailed") => {
                    return Err(StoreError::AlreadyExists);
                }
                Some(codes) if codes.iter().any(|c| c == "ConditionalCheckFailed") => {
                    return Err(StoreError::ConditionFailed);
                }
                Some(codes) if codes.iter().any(|c| c == "TransactionConflict") => {
                    if attempt == CONFLICT_RETRIES {
                        return Err(StoreError::Unavailable(anyhow::anyhow!(
                            "transaction conflict persisted after {attempt} retries"
                        )));
                    }
                    attempt += 1;
                    token = uuid::Uuid::new_v4().to_string();
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

    async fn activate(&self, attempt: &ActivationAttempt) -> Result<ActivationOutcome, StoreError> {
        self.activate_impl(attempt).await
    }

    async fn counted_outcome(
        &self,
        a: &ActivationAttempt,
    ) -> Result<Option<ActivationOutcome>, StoreError> {
        let (pk, sk) = keys::customer(&a.tenant, &a.customer_id);
        Ok(self
            .get_consistent((&pk, sk))
            .await?
            .filter(|item| counted_attempt(item, &a.id))
            .map(|item| judged(&item, &a.id, a.max_attempts)))
    }

    async fn email_owner(
        &self,
        tenant: &TenantId,
        email_normalized: &str,
    ) -> Result<Option<String>, StoreError> {
        let (pk, sk) = keys::email(tenant, email_normalized);
        Ok(self
            .get_consistent((&pk, sk))
            .await?
            .and_then(|marker| text(&marker, "customerId").map(str::to_owned)))
    }

    async fn activation_state(
        &self,
        tenant: &TenantId,
        customer_id: &str,
    ) -> Result<Option<ActivationState>, StoreError> {
        self.activation_state_impl(tenant, customer_id).await
    }

    async fn reissue_code(
        &self,
        tenant: &TenantId,
        customer_id: &str,
        expected_version: u64,
        code: &IssuedCode,
        resend: &ResendHistory,
    ) -> Result<(), StoreError> {
        self.reissue_code_impl(tenant, customer_id, expected_version, code, resend)
            .await
    }

    async fn holds_code(
        &self,
        tenant: &TenantId,
        customer_id: &str,
        code: &IssuedCode,
    ) -> Result<bool, StoreError> {
        let (pk, sk) = keys::customer(tenant, customer_id);
        Ok(self
            .get_consistent((&pk, sk))
            .await?
            .is_some_and(|item| holds_keys(&item, code)))
    }
}

const PENDING: &str = "CS_REGISTRATION_COMPLETED";
const ACTIVE: &str = "CS_ACTIVE";

fn number(item: &Item, name: &str) -> Option<i64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)?.as_s().ok().map(String::as_str)
}

/// Whether the attempt with this id has been counted against the item's current code.
fn counted_attempt(item: &Item, attempt_id: &str) -> bool {
    item.get("attemptIds")
        .and_then(|ids| ids.as_ss().ok())
        .is_some_and(|ids| ids.iter().any(|id| id == attempt_id))
}

fn epoch(seconds: Option<i64>) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(seconds?, 0)
}

/// A limit's start (a code's issue, a resend) in the whole epoch seconds it is stored in,
/// rounded up: a limit counted from it then never ends before it should (rounded down, the
/// 60 s between resends could be 59.1 s).
fn limit_seconds(at: chrono::DateTime<chrono::Utc>) -> i64 {
    let whole = at.timestamp();
    if at.timestamp_subsec_nanos() == 0 {
        whole
    } else {
        whole + 1
    }
}

/// The resends of the last 24 h (`resendTimes`, epoch seconds). An item written before the
/// rolling window kept a count and the start of a fixed window instead: its resends are all
/// taken to have happened at that start, which refuses no less than the old rule did.
fn resend_history(item: &Item) -> ResendHistory {
    let recent = match item.get("resendTimes").and_then(|t| t.as_l().ok()) {
        Some(times) => times
            .iter()
            .filter_map(|t| epoch(t.as_n().ok()?.parse().ok()))
            .collect(),
        None => match epoch(number(item, "resendWindowStart")) {
            Some(start) => {
                let count = number(item, "resendCount").unwrap_or(0).clamp(0, 5);
                vec![start; usize::try_from(count).unwrap_or(0)]
            }
            None => Vec::new(),
        },
    };
    ResendHistory { recent }
}

fn user_id_of(item: &Item) -> Option<String> {
    item.get("user")?
        .as_m()
        .ok()?
        .get("id")?
        .as_s()
        .ok()
        .cloned()
}

/// The item a failed conditional update saw: returned by DynamoDB with
/// `ReturnValuesOnConditionCheckFailure`, else read again (consistently).
enum Update {
    Done(Item),
    ConditionFailed(Option<Item>),
}

impl DynamoStore {
    async fn conditional_update(
        &self,
        builder: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
        key: (&str, &str),
    ) -> Result<Update, StoreError> {
        match builder
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await
        {
            Ok(out) => Ok(Update::Done(out.attributes.unwrap_or_default())),
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    let old = match failed.item() {
                        Some(item) => Some(item.clone()),
                        None => self.get_consistent(key).await?,
                    };
                    Ok(Update::ConditionFailed(old))
                }
                _ => Err(classify(err)),
            },
        }
    }

    /// An `UpdateItem` on one key of this table.
    fn update_item(
        &self,
        pk: &str,
        sk: &str,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(keys::PK, s(pk))
            .key(keys::SK, s(sk))
    }

    async fn get_consistent(&self, (pk, sk): (&str, &str)) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(keys::PK, s(pk))
            .key(keys::SK, s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        Ok(out.item)
    }

    /// Why an attempt could not be counted, from the item as it was (`None`: no reason in it).
    fn refusal(old: Option<&Item>, now: i64, max: u32) -> Option<ActivationOutcome> {
        let Some(old) = old else {
            return Some(ActivationOutcome::NotFound);
        };
        if text(old, "customerStatus") == Some(ACTIVE) {
            return Some(ActivationOutcome::AlreadyActive);
        }
        // Expired before used up, in the order of the contract's table (§4.2); either way a
        // new code is needed.
        // A code stored as one hash (`codeHash`: before codes had keys, or by such a version
        // of the functions running beside this one) cannot be judged in one write: like an
        // expired one, it needs a new code, which a resend issues (and removes the hash).
        if number(old, "codeExpiresAt").is_none_or(|at| at <= now)
            || !old.contains_key("codeKeys")
            || old.contains_key("codeHash")
        {
            return Some(ActivationOutcome::Expired);
        }
        if number(old, "codeAttempts").unwrap_or(0) >= i64::from(max) {
            return Some(ActivationOutcome::TooManyAttempts);
        }
        None
    }
}

/// The switch to active, by the code's keys (`codeKeys`): for each attribute the switch
/// changes, a map from each key to its value after the switch. An attempt reads
/// `if_not_exists(codeKeys.<attribute>.<its key>, <unchanged>)`, so only a right key switches.
/// (The key is the last step of the path: the shape of DynamoDB's well-known per-key counter,
/// `if_not_exists(counts.<key>, :zero)`.)
fn code_keys(code: &IssuedCode) -> AttributeValue {
    let by_key = |value: AttributeValue| {
        AttributeValue::M(
            code.keys
                .iter()
                .map(|key| (key.clone(), value.clone()))
                .collect(),
        )
    };
    AttributeValue::M(
        [
            ("customerStatus".to_owned(), by_key(s(ACTIVE))),
            ("userStatus".to_owned(), by_key(s("ACTIVE"))),
            // Added to `version`: the switch is a new version of the customer; a counted
            // wrong attempt is not (a resend in flight, conditional on the version it read,
            // would otherwise fail and answer 429 for a resend it never made).
            ("versionStep".to_owned(), by_key(n(1))),
        ]
        .into(),
    )
}

/// The id of the attempt counted last (`lastAttempt.id`).
fn last_attempt_id(item: &Item) -> Option<&str> {
    item.get("lastAttempt")?
        .as_m()
        .ok()?
        .get("id")?
        .as_s()
        .ok()
        .map(String::as_str)
}

/// What a counted attempt came to, from the item right after it: the customer is active
/// only if this attempt switched it (no attempt is counted once it is active), or, for the
/// retry of an attempt counted before another one activated the customer, already active.
fn judged(item: &Item, attempt_id: &str, max: u32) -> ActivationOutcome {
    if text(item, "customerStatus") == Some(ACTIVE) {
        return if last_attempt_id(item) == Some(attempt_id) {
            ActivationOutcome::Activated {
                user_id: user_id_of(item).unwrap_or_default(),
            }
        } else {
            ActivationOutcome::AlreadyActive
        };
    }
    ActivationOutcome::Invalid {
        attempts_remaining: remaining(max, number(item, "codeAttempts").unwrap_or(i64::from(max))),
    }
}

fn remaining(max: u32, attempts: i64) -> u32 {
    u32::try_from((i64::from(max) - attempts).max(0)).unwrap_or(0)
}

impl DynamoStore {
    pub(crate) async fn activate_impl(
        &self,
        a: &ActivationAttempt,
    ) -> Result<ActivationOutcome, StoreError> {
        let (pk, sk) = keys::customer(&a.tenant, &a.customer_id);
        let now = a.now.timestamp();
        // Marks this attempt's write, so that an SDK retry of a write whose answer was lost
        // finds its own write instead of counting twice or reading it as someone else's.
        let attempt_id = a.id.as_str();
        let last_attempt = AttributeValue::M(
            [
                ("id".to_owned(), s(attempt_id)),
                ("at".to_owned(), s(crate::registration::timestamp(a.now))),
                (
                    "context".to_owned(),
                    AttributeValue::M(to_item(&a.context)?),
                ),
            ]
            .into(),
        );
        // One write counts the attempt and judges it (§4.1, §4.2): only while the customer is
        // pending, the code unexpired and attempts are left, it adds the attempt and takes the
        // statuses from `codeKeys.*.<this attempt's key>` if the code was issued with that
        // key, else keeps them. A failed condition writes nothing, so a write that judged first and
        // counted only on success could not count a wrong code, and parallel guesses would
        // each be judged before any was counted. Counted and judged in one write, they cannot
        // be; and of concurrent right codes the first switches, the others find it active.
        let update = self
            .update_item(&pk, sk)
            .condition_expression(
                "customerStatus = :pending AND codeExpiresAt > :now \
                 AND attribute_exists(codeKeys) AND attribute_not_exists(codeHash) \
                 AND (attribute_not_exists(codeAttempts) OR codeAttempts < :max) \
                 AND NOT contains(attemptIds, :attempt)",
            )
            .update_expression(
                "SET customerStatus = if_not_exists(codeKeys.customerStatus.#key, :pending), \
                 #user.#status = if_not_exists(codeKeys.userStatus.#key, :userPending), \
                 version = version + if_not_exists(codeKeys.versionStep.#key, :zero), \
                 codeAttempts = if_not_exists(codeAttempts, :zero) + :one, \
                 lastAttempt = :lastAttempt, updatedAt = :at \
                 ADD attemptIds :attemptSet",
            )
            .expression_attribute_names("#key", &a.code_key)
            .expression_attribute_names("#user", "user")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":pending", s(PENDING))
            .expression_attribute_values(":userPending", s("PENDING_ACTIVATION"))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":max", n(a.max_attempts))
            .expression_attribute_values(":attempt", s(attempt_id))
            .expression_attribute_values(
                ":attemptSet",
                AttributeValue::Ss(vec![attempt_id.to_owned()]),
            )
            .expression_attribute_values(":lastAttempt", last_attempt)
            .expression_attribute_values(":at", s(crate::registration::timestamp(a.now)))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllNew);
        match self.conditional_update(update, (&pk, sk)).await? {
            Update::Done(item) => Ok(judged(&item, attempt_id, a.max_attempts)),
            // A retry whose first try was counted (even if later attempts were counted since):
            // its outcome is in the item. A new code empties the set, so a counted id always
            // belongs to the current code.
            Update::ConditionFailed(Some(old)) if counted_attempt(&old, attempt_id) => {
                Ok(judged(&old, attempt_id, a.max_attempts))
            }
            Update::ConditionFailed(old) => Self::refusal(old.as_ref(), now, a.max_attempts)
                .ok_or_else(|| {
                    StoreError::Unexpected(anyhow::anyhow!(
                        "activation attempt refused for no known reason"
                    ))
                }),
        }
    }

    pub(crate) async fn activation_state_impl(
        &self,
        tenant: &TenantId,
        customer_id: &str,
    ) -> Result<Option<ActivationState>, StoreError> {
        let (pk, sk) = keys::customer(tenant, customer_id);
        let Some(item) = self.get_consistent((&pk, sk)).await? else {
            return Ok(None);
        };
        let status = match text(&item, "customerStatus") {
            Some(ACTIVE) => CustomerStatus::Active,
            _ => CustomerStatus::RegistrationCompleted,
        };
        let email = item
            .get("person")
            .and_then(|p| p.as_m().ok())
            .and_then(|p| p.get("email"))
            .and_then(|e| e.as_s().ok())
            .cloned()
            .unwrap_or_default();
        Ok(Some(ActivationState {
            status,
            user_id: user_id_of(&item).unwrap_or_default(),
            email,
            email_normalized: text(&item, "emailNormalized")
                .unwrap_or_default()
                .to_owned(),
            code_issued_at: epoch(number(&item, "codeIssuedAt")),
            resend: resend_history(&item),
            version: u64::try_from(number(&item, "version").unwrap_or(0)).unwrap_or(0),
        }))
    }

    pub(crate) async fn reissue_code_impl(
        &self,
        tenant: &TenantId,
        customer_id: &str,
        expected_version: u64,
        code: &IssuedCode,
        resend: &ResendHistory,
    ) -> Result<(), StoreError> {
        let (pk, sk) = keys::customer(tenant, customer_id);
        let times = resend
            .recent
            .iter()
            .map(|at| n(limit_seconds(*at)))
            .collect::<Vec<_>>();
        let update = self
            .update_item(&pk, sk)
            .condition_expression("customerStatus = :pending AND version = :version")
            .update_expression(
                "SET codeKeys = :keys, codeIssuedAt = :issued, codeExpiresAt = :expires, \
                 codeAttempts = :zero, resendTimes = :times, updatedAt = :at, \
                 version = version + :one \
                 REMOVE attemptIds, codeHash, resendCount, resendWindowStart",
            )
            .expression_attribute_values(":pending", s(PENDING))
            .expression_attribute_values(":version", n(expected_version))
            .expression_attribute_values(":keys", code_keys(code))
            .expression_attribute_values(":issued", n(limit_seconds(code.issued_at)))
            .expression_attribute_values(":expires", n(code.expires_at.timestamp()))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":times", AttributeValue::L(times))
            .expression_attribute_values(":at", s(crate::registration::timestamp(code.issued_at)))
            .expression_attribute_values(":one", n(1));
        match self.conditional_update(update, (&pk, sk)).await? {
            Update::Done(_) => Ok(()),
            // An SDK retry of this very write, whose answer was lost: the item holds this
            // code's keys (a fresh random code's, so no other write can have put them there).
            Update::ConditionFailed(Some(item)) if holds_keys(&item, code) => Ok(()),
            Update::ConditionFailed(_) => Err(StoreError::ConditionFailed),
        }
    }
}

/// Whether `item`'s current code is `code` (its switch is keyed by exactly `code`'s keys).
fn holds_keys(item: &Item, code: &IssuedCode) -> bool {
    let stored = item
        .get("codeKeys")
        .and_then(|keys| keys.as_m().ok())
        .and_then(|keys| keys.get("customerStatus"))
        .and_then(|by_key| by_key.as_m().ok());
    stored.is_some_and(|by_key| {
        by_key.len() == code.keys.len() && code.keys.iter().all(|k| by_key.contains_key(k))
    })
}

const IN_PROGRESS: &str = "IN_PROGRESS";
const COMPLETED: &str = "COMPLETED";
/// On a released claim's record: when it was released, in epoch milliseconds.
const RELEASED_AT: &str = "releasedAt";

/// The records a claim may take: none, an expired one (TTL deletion lags), or one whose lock
/// has expired: abandoned mid-flight by a request that wrote nothing (its write and the
/// completion are one transaction), or released (see `release`) before this claim started
/// (or in the same millisecond, by another claim). Not a record released after the claim
/// started: a put still on its way when a claim was released, of that claim or of a twin
/// request's, must not lock the key again.
const CLAIMABLE: &str = "attribute_not_exists(PK) OR expiresAt <= :now \
     OR (#status = :inProgress AND lockExpiresAt <= :now \
         AND (attribute_not_exists(releasedAt) OR releasedAt < :claimStart \
              OR (releasedAt = :claimStart AND #token <> :token)))";

impl DynamoStore {
    /// A put of claim `c`'s record, locked until `lock_expires_at` (epoch seconds), with the
    /// names and values [`CLAIMABLE`] needs to be evaluated for a claim started `at`. The
    /// caller sets the condition.
    fn claim_put(
        &self,
        c: &super::IdempotencyClaim,
        lock_expires_at: i64,
        at: chrono::DateTime<chrono::Utc>,
    ) -> aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder {
        let (pk, sk) = keys::idempotency(&c.tenant, &c.key);
        self.client
            .put_item()
            .table_name(&self.table)
            .item(keys::PK, s(pk))
            .item(keys::SK, s(sk))
            .item("entityType", s("IDEMPOTENCY"))
            .item("status", s(IN_PROGRESS))
            .item("bodyHash", s(&c.body_hash))
            .item("token", s(&c.token))
            .item("createdAt", s(crate::registration::timestamp(c.now)))
            .item("expiresAt", n(c.expires_at.timestamp()))
            .item("lockExpiresAt", n(lock_expires_at))
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#token", "token")
            .expression_attribute_values(":now", n(at.timestamp()))
            .expression_attribute_values(":inProgress", s(IN_PROGRESS))
            .expression_attribute_values(":claimStart", n(at.timestamp_millis()))
            .expression_attribute_values(":token", s(&c.token))
    }

    /// The Update that completes a claim: only the request holding it may.
    fn completion_update(
        &self,
        c: &super::IdempotencyCompletion,
    ) -> Result<aws_sdk_dynamodb::types::Update, StoreError> {
        let (pk, sk) = keys::idempotency(&c.tenant, &c.key);
        let mut update = aws_sdk_dynamodb::types::Update::builder()
            .table_name(&self.table)
            .key(keys::PK, s(pk))
            .key(keys::SK, s(sk))
            // Not a released claim: a transaction still on the way when its claim was released
            // (the request answered 503) must be cancelled, as it would be on a deleted record.
            .condition_expression("#token = :token AND attribute_not_exists(releasedAt)")
            .update_expression(
                "SET #status = :completed, responseStatus = :code, responseBody = :body, \
                 responseLocation = :location",
            )
            .expression_attribute_names("#token", "token")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":token", s(&c.token))
            .expression_attribute_values(":completed", s(COMPLETED))
            .expression_attribute_values(":code", n(c.response.status))
            .expression_attribute_values(":body", s(&c.response.body))
            .expression_attribute_values(
                ":location",
                c.response
                    .location
                    .as_deref()
                    .map(s)
                    .unwrap_or(AttributeValue::Null(true)),
            );
        update = update
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::None);
        update.build().map_err(|e| StoreError::Unexpected(e.into()))
    }
}

#[async_trait]
impl super::IdempotencyStore for DynamoStore {
    async fn claim(&self, c: &super::IdempotencyClaim) -> Result<super::ClaimOutcome, StoreError> {
        use super::ClaimOutcome;
        let (pk, sk) = keys::idempotency(&c.tenant, &c.key);
        let result = self
            .claim_put(c, c.lock_expires_at.timestamp(), c.now)
            .condition_expression(CLAIMABLE)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let old = match result {
            Ok(_) => return Ok(ClaimOutcome::Claimed),
            Err(err) => match err.as_service_error() {
                Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(f)) => {
                    match f.item() {
                        Some(item) => Some(item.clone()),
                        None => self.get_consistent((&pk, sk)).await?,
                    }
                }
                // The record is in a registration's transaction that DynamoDB is running: the
                // key's first request is still under way (§3.6's 409), not a storage failure,
                // unless it has another body (422). A read is not blocked by the transaction:
                // it gets the record as last committed, the first request's claim.
                Some(e) if e.code() == Some("TransactionConflictException") => {
                    return Ok(match self.get_consistent((&pk, sk)).await? {
                        Some(record) => record_outcome(&record, &c.body_hash),
                        None => ClaimOutcome::InProgress,
                    });
                }
                _ => return Err(classify(err)),
            },
        };
        // The record vanished between the two calls (TTL): treat as in progress; a retry claims.
        let Some(old) = old else {
            return Ok(ClaimOutcome::InProgress);
        };
        if text(&old, "token") == Some(c.token.as_str()) {
            // Our own claim: the SDK retried a put whose answer was lost after it was applied.
            // (Released already, it could only be a put that outlived its request.)
            return Ok(if old.contains_key(RELEASED_AT) {
                ClaimOutcome::InProgress
            } else {
                ClaimOutcome::Claimed
            });
        }
        Ok(record_outcome(&old, &c.body_hash))
    }

    async fn complete(&self, c: &super::IdempotencyCompletion) -> Result<(), StoreError> {
        let update = self.completion_update(c)?;
        self.client
            .update_item()
            .table_name(update.table_name())
            .set_key(Some(update.key().clone()))
            .set_condition_expression(update.condition_expression().map(str::to_owned))
            .update_expression(update.update_expression())
            .set_expression_attribute_names(update.expression_attribute_names().cloned())
            .set_expression_attribute_values(update.expression_attribute_values().cloned())
            .send()
            .await
            .map_err(|err| match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(_)) => {
                    StoreError::ConditionFailed
                }
                _ => classify(err),
            })?;
        Ok(())
    }

    /// Replaces the claim, or any record a claim started `at` could take, with a tombstone: an
    /// abandoned claim (its lock expired) stamped with `at`, which a claim started later may
    /// take ([`CLAIMABLE`]) and one started earlier may not. A put of a claim its request gave
    /// up on (an SDK attempt still on its way to DynamoDB) would otherwise take the key after
    /// the release, for the lock's 60 s; so would a twin request's put that arrives after this
    /// release, or after a later one, were the tombstone to name a token or a claim's start.
    /// Code from before tombstones reads one as an abandoned claim and takes it.
    async fn release(
        &self,
        c: &super::IdempotencyClaim,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StoreError> {
        let result = self
            .claim_put(c, 0, at)
            .item(RELEASED_AT, n(at.timestamp_millis()))
            .condition_expression(format!(
                "{CLAIMABLE} OR (#token = :token AND #status = :inProgress)"
            ))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(err) => Err(classify(err)),
        }
    }

    async fn recorded(
        &self,
        tenant: &TenantId,
        key: &str,
        body_hash: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<super::ClaimOutcome>, StoreError> {
        let (pk, sk) = keys::idempotency(tenant, key);
        let Some(item) = self.get_consistent((&pk, sk)).await? else {
            return Ok(None);
        };
        // Expired as a claim sees it (TTL deletion lags): `expiresAt <= now`; or released.
        if number(&item, "expiresAt").is_none_or(|at| at <= now.timestamp())
            || item.contains_key(RELEASED_AT)
        {
            return Ok(None);
        }
        Ok(Some(record_outcome(&item, body_hash)))
    }
}

/// What a live idempotency record means for a request with `body_hash`.
fn record_outcome(record: &Item, body_hash: &str) -> super::ClaimOutcome {
    use super::ClaimOutcome;
    // Released after this request's claim failed on it: a retry may take it.
    if record.contains_key(RELEASED_AT) {
        return ClaimOutcome::InProgress;
    }
    if text(record, "bodyHash") != Some(body_hash) {
        return ClaimOutcome::Reused;
    }
    if text(record, "status") != Some(COMPLETED) {
        return ClaimOutcome::InProgress;
    }
    ClaimOutcome::Completed(super::StoredResponse {
        status: u16::try_from(number(record, "responseStatus").unwrap_or(500)).unwrap_or(500),
        body: text(record, "responseBody").unwrap_or_default().to_owned(),
        location: text(record, "responseLocation").map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_starts_are_stored_rounded_up_to_the_second() {
        let t0 = chrono::DateTime::from_timestamp(1_795_735_213, 0).unwrap();
        let ms = chrono::Duration::milliseconds;
        for (at, stored) in [
            (t0, 1_795_735_213),
            (t0 + ms(1), 1_795_735_214),
            (t0 + ms(900), 1_795_735_214),
            (
                t0 + chrono::Duration::nanoseconds(999_999_999),
                1_795_735_214,
            ),
            (t0 - ms(1), 1_795_735_213),
        ] {
            assert_eq!(limit_seconds(at), stored, "{at}");
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

    #[test]
    fn resend_histories_are_read_from_either_layout() {
        let at = |secs: i64| chrono::DateTime::from_timestamp(secs, 0).unwrap();
        let item = |pairs: &[(&str, AttributeValue)]| -> Item {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect()
        };
        let cases = [
            (item(&[]), vec![]),
            (
                item(&[("resendTimes", AttributeValue::L(vec![n(100), n(200)]))]),
                vec![at(100), at(200)],
            ),
            // Written before the rolling window: a count and a fixed window's start.
            (
                item(&[("resendCount", n(3)), ("resendWindowStart", n(500))]),
                vec![at(500); 3],
            ),
            (item(&[("resendCount", n(0))]), vec![]),
            (
                item(&[("resendCount", n(99)), ("resendWindowStart", n(500))]),
                vec![at(500); 5],
            ),
        ];
        for (item, expected) in cases {
            assert_eq!(resend_history(&item).recent, expected, "{item:?}");
        }
    }

    #[test]
    fn the_amazon_roots_make_a_valid_trust_store() {
        for pem in AMAZON_ROOTS {
            assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
        }
        assert!(
            https_client().is_some(),
            "the TLS context accepts the four Amazon roots"
        );
    }

    /// Counts of the metrics recorded on this thread.
    #[derive(Default)]
    struct Counts(std::sync::Mutex<HashMap<String, std::sync::Arc<std::sync::atomic::AtomicU64>>>);

    impl Counts {
        fn of(&self, name: &str) -> u64 {
            self.0
                .lock()
                .unwrap()
                .get(name)
                .map_or(0, |c| c.load(std::sync::atomic::Ordering::SeqCst))
        }
    }

    impl metrics::Recorder for Counts {
        fn describe_counter(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn describe_gauge(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn describe_histogram(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn register_counter(
            &self,
            key: &metrics::Key,
            _: &metrics::Metadata<'_>,
        ) -> metrics::Counter {
            let mut counts = self.0.lock().unwrap();
            metrics::Counter::from_arc(counts.entry(key.name().to_owned()).or_default().clone())
        }
        fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
            metrics::Gauge::noop()
        }
        fn register_histogram(
            &self,
            _: &metrics::Key,
            _: &metrics::Metadata<'_>,
        ) -> metrics::Histogram {
            metrics::Histogram::noop()
        }
    }

    /// A client of the DynamoDB at `url`, making up to `attempts` attempts per call.
    fn client_of(url: String, attempts: u32) -> Client {
        let aws = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(url)
            .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
                aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "test"),
            ))
            .retry_config(
                aws_config::retry::RetryConfig::standard()
                    .with_max_attempts(attempts)
                    .with_initial_backoff(Duration::from_millis(1)),
            )
            .build();
        client(&aws)
    }

    /// The retries the EMF metric reports are the SDK's own: a DynamoDB that answers 500 once
    /// (the SDK retries it) gives two requests and one retry.
    #[test]
    fn the_client_counts_its_requests_and_the_sdks_retries() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let counts = Counts::default();
        let _local = metrics::set_default_local_recorder(&counts);
        let item = runtime.block_on(async {
            // A 500 first, then an empty GetItem.
            let url = crate::testing::answering(vec![
                (
                    "500 Internal Server Error",
                    r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"try again"}"#,
                ),
                ("200 OK", "{}"),
            ])
            .await;
            client_of(url, 3)
                .get_item()
                .table_name("t")
                .key(keys::PK, AttributeValue::S("a".into()))
                .key(keys::SK, AttributeValue::S("b".into()))
                .send()
                .await
                .expect("answered on the retry")
        });
        assert!(item.item().is_none());
        assert_eq!(counts.of("DynamoDbRequests"), 2);
        assert_eq!(counts.of("DynamoDbRetries"), 1);
    }

    /// DynamoDB refuses a single write to an item that a running transaction writes with
    /// `TransactionConflictException`, which the SDK does not retry: a claim meeting the key's
    /// first request in its registration transaction is that request still under way (409
    /// `REQUEST_IN_PROGRESS`), or a reuse with another body (422), as the record last committed
    /// (read next) says; not a 500. moto applies requests one at a time and never answers it,
    /// so the answers are given here.
    #[tokio::test]
    async fn a_claim_meeting_the_first_requests_transaction_is_in_progress() {
        const CONFLICT: (&str, &str) = (
            "400 Bad Request",
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionConflictException","message":"Transaction is ongoing for the item"}"#,
        );
        const FIRST_CLAIM: &str = r#"{"Item":{"PK":{"S":"p"},"SK":{"S":"IDEMPOTENCY"},"status":{"S":"IN_PROGRESS"},"token":{"S":"first"},"bodyHash":{"S":"h"}}}"#;
        let now = chrono::Utc::now();
        let claim = |body_hash: &str| crate::store::IdempotencyClaim {
            tenant: TenantId::parse("t-conflict").unwrap(),
            key: "k".into(),
            body_hash: body_hash.into(),
            token: "second".into(),
            now,
            expires_at: now + chrono::Duration::hours(24),
            lock_expires_at: now + chrono::Duration::seconds(60),
        };
        for (body_hash, record, expected) in [
            ("h", FIRST_CLAIM, crate::store::ClaimOutcome::InProgress),
            ("another", FIRST_CLAIM, crate::store::ClaimOutcome::Reused),
            ("h", "{}", crate::store::ClaimOutcome::InProgress),
        ] {
            // Up to 3 attempts each: a retry would find no answer left (a dispatch failure).
            let url = crate::testing::answering(vec![CONFLICT, ("200 OK", record)]).await;
            let store = DynamoStore::new(client_of(url, 3), "t");
            assert_eq!(
                crate::store::IdempotencyStore::claim(&store, &claim(body_hash))
                    .await
                    .unwrap(),
                expected,
                "{body_hash} against {record}"
            );
        }
    }

    /// Which DynamoDB errors leave the outcome to a retry (`Unavailable`: 503, and after a
    /// write, a read of whether it was applied) and which are the request's own.
    #[tokio::test]
    async fn errors_that_a_retry_may_resolve_are_unavailable() {
        for (status, kind, unavailable) in [
            ("400 Bad Request", "TransactionInProgressException", true),
            ("400 Bad Request", "TransactionConflictException", true),
            ("400 Bad Request", "ThrottlingException", true),
            (
                "400 Bad Request",
                "ProvisionedThroughputExceededException",
                true,
            ),
            ("500 Internal Server Error", "InternalServerError", true),
            ("400 Bad Request", "ValidationException", false),
            (
                "400 Bad Request",
                "IdempotentParameterMismatchException",
                false,
            ),
        ] {
            let body: &'static str = Box::leak(
                format!(r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{kind}","message":"m"}}"#)
                    .into_boxed_str(),
            );
            let url = crate::testing::answering(vec![(status, body)]).await;
            let err = client_of(url, 1)
                .transact_write_items()
                .transact_items(
                    TransactWriteItem::builder()
                        .delete(
                            aws_sdk_dynamodb::types::Delete::builder()
                                .table_name("t")
                                .key(keys::PK, AttributeValue::S("a".into()))
                                .key(keys::SK, AttributeValue::S("b".into()))
                                .build()
                                .unwrap(),
                        )
                        .build(),
                )
                .send()
                .await
                .expect_err("refused");
            let classified = classify(err);
            assert_eq!(
                matches!(classified, StoreError::Unavailable(_)),
                unavailable,
                "{kind}: {classified:?}"
            );
            // The log learns the code, never the body.
            let (StoreError::Unavailable(cause) | StoreError::Unexpected(cause)) = classified
            else {
                panic!("{kind}: neither unavailable nor unexpected");
            };
            assert!(format!("{cause:#}").contains(kind), "{kind}: {cause:#}");
        }
    }
}
