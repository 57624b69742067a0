//! `Idempotency-Key` records: claim, completion, release.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use super::{DynamoStore, Item, classify, n, number, s, text};
use crate::domain::TenantId;
use crate::store::{StoreError, keys};

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
        c: &crate::store::IdempotencyClaim,
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
            .item("bodyHash", s(&c.body_hash.stored))
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
    pub(super) fn completion_update(
        &self,
        c: &crate::store::IdempotencyCompletion,
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
impl crate::store::IdempotencyStore for DynamoStore {
    async fn claim(
        &self,
        c: &crate::store::IdempotencyClaim,
    ) -> Result<crate::store::ClaimOutcome, StoreError> {
        use crate::store::ClaimOutcome;
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

    async fn complete(&self, c: &crate::store::IdempotencyCompletion) -> Result<(), StoreError> {
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
        c: &crate::store::IdempotencyClaim,
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
        body_hash: &crate::store::BodyHash,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<crate::store::ClaimOutcome>, StoreError> {
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
fn record_outcome(record: &Item, body_hash: &crate::store::BodyHash) -> crate::store::ClaimOutcome {
    use crate::store::ClaimOutcome;
    // Released after this request's claim failed on it: a retry may take it.
    if record.contains_key(RELEASED_AT) {
        return ClaimOutcome::InProgress;
    }
    if !text(record, "bodyHash").is_some_and(|recorded| body_hash.matches(recorded)) {
        return ClaimOutcome::Reused;
    }
    if text(record, "status") != Some(COMPLETED) {
        return ClaimOutcome::InProgress;
    }
    ClaimOutcome::Completed(crate::store::StoredResponse {
        status: u16::try_from(number(record, "responseStatus").unwrap_or(500)).unwrap_or(500),
        body: text(record, "responseBody").unwrap_or_default().to_owned(),
        location: text(record, "responseLocation").map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::dynamodb::client::client_of;

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
            body_hash: crate::store::BodyHash::single(body_hash),
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
}
