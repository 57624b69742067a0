//! Customers: the registration transaction, activation attempts and code resends.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, TransactWriteItem};
use secrecy::ExposeSecret;

use super::{
    DynamoStore, Item, Update, build_put, cancellation_codes, classify, n, number, s, text, to_item,
};
use crate::activation::rules::ResendHistory;
use crate::activation::{ActivationAttempt, ActivationOutcome, ActivationState, IssuedCode};
use crate::domain::TenantId;
use crate::registration::CustomerStatus;
use crate::store::{CustomerStore, NewCustomer, StoreError, keys};

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

impl DynamoStore {
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
}
