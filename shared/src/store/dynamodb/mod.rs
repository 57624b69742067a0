//! The DynamoDB adapter of the storage port: the only place that knows attribute names, key
//! formats (via `keys`) and how SDK errors map onto `StoreError`.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};

use super::{StoreError, keys};

type Item = HashMap<String, AttributeValue>;

mod client;
mod customers;
mod hierarchy;
mod idempotency;

pub use client::{aws_config_from_env, client, client_from_env};
pub use hierarchy::HierarchyPut;

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

fn number(item: &Item, name: &str) -> Option<i64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)?.as_s().ok().map(String::as_str)
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
}

#[cfg(test)]
mod tests {
    use super::client::client_of;
    use super::*;

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
