//! Registration (§3): validate the whole body, resolve the categorization against the tenant's
//! hierarchy, hash the password with Argon2id, and write the customer and its e-mail marker in
//! one transaction. Expected failures are designed 4xx responses; nothing is written before
//! every check has passed.

pub mod response;

use std::sync::Arc;
use std::time::Instant;

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use shared::activation::IssuedCode;
use shared::activation::code::{ActivationCode, CodeHasher};
use shared::activation::delivery::{ActivationMessage, CodeSender, deliver};
use shared::activation::settings::ActivationSettings;
use shared::api::auth::{self, scopes};
use shared::api::body::{json_bytes, parse_json_collecting};
use shared::api::client_context::{self, ClientContext};
use shared::api::idempotency;
use shared::api::outcome::{
    answer_by, finish, in_request_span, read_back, record_route, step_within, storage_failure,
    time_to_write, within_deadline, write_within,
};
use shared::api::routes::{self, Function};
use shared::api::{ApiError, FieldError, body_text, raw_json_response, request_id};
use shared::categorization::{HierarchyCache, resolve};
use shared::clock::Clock;
use shared::config::Config;
use shared::domain::TenantId;
use shared::registration::{
    Customer, CustomerStatus, NewRegistration, Person, RegistrationRequest, User, UserStatus,
    ValidationContext, validate_typed,
};
use shared::store::{
    ClaimOutcome, CustomerStore, HierarchySource, IdempotencyClaim, IdempotencyStore, NewCustomer,
    StoreError, StoredResponse,
};

const ROUTE: &str = "POST /registration";

/// The most recording a failed e-mail, or settling a claim after a failure, in the
/// Idempotency-Key record may take (within the invocation: after an e-mail that took all its
/// time, ~1 s is left).
const RECORD_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The registration function, built once per cold start.
pub struct Registration {
    config: Config,
    code_ttl: chrono::Duration,
    hasher: CodeHasher,
    body_hasher: idempotency::BodyHasher,
    hierarchies: HierarchyCache,
    customers: Arc<dyn CustomerStore>,
    idempotency: Arc<dyn IdempotencyStore>,
    sender: Arc<dyn CodeSender>,
    clock: Arc<dyn Clock>,
}

/// A registration that passed every check: fields, then categorization (and, on a hierarchy
/// cache miss, the password's hash, computed while the hierarchy loaded).
struct Checked {
    registration: NewRegistration,
    categorization: shared::categorization::ResolvedCategorization,
    early_hash: Option<shared::password::Hashed>,
}

/// Whether the activation e-mail went out (§3.4 step 6).
fn delivery_status(sent: bool) -> &'static str {
    if sent { "SENT" } else { "FAILED" }
}

impl Registration {
    pub fn new(
        config: Config,
        activation: &ActivationSettings,
        hierarchies: Arc<dyn HierarchySource>,
        customers: Arc<dyn CustomerStore>,
        idempotency: Arc<dyn IdempotencyStore>,
        sender: Arc<dyn CodeSender>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let hierarchies = HierarchyCache::new(hierarchies, config.hierarchy_cache_ttl);
        Self {
            config,
            code_ttl: chrono::Duration::from_std(activation.code_ttl)
                .unwrap_or(chrono::Duration::hours(24)),
            hasher: activation.hasher(),
            body_hasher: activation.body_hasher(),
            hierarchies,
            customers,
            idempotency,
            sender,
            clock,
        }
    }

    /// Handles one API Gateway request; never fails (errors are designed responses).
    pub async fn handle(&self, req: Request) -> Response<Body> {
        let started = Instant::now();
        let request_id = request_id(&req);
        in_request_span(&request_id, async {
            record_route(ROUTE);
            let mut tenant = None;
            let result = within_deadline(&req, self.register(&req, &request_id, &mut tenant)).await;
            finish(
                ROUTE,
                &request_id,
                tenant.as_ref().map(TenantId::as_str),
                started,
                result,
            )
        })
        .await
    }

    async fn register(
        &self,
        req: &Request,
        request_id: &str,
        tenant_out: &mut Option<TenantId>,
    ) -> Result<Response<Body>, ApiError> {
        // 1. Route, token, headers, body: nothing touched yet.
        let (route, _) = routes::from_request(req)?;
        if route.function != Function::Registration {
            return Err(ApiError::RouteNotFound);
        }
        let caller = auth::caller(req, &self.config.tenant_claim, scopes::CUSTOMERS_WRITE)?;
        *tenant_out = Some(caller.tenant.clone());
        let tenant_header = auth::tenant_header(req);
        let context = client_context::extract(req, tenant_header.is_none())?;
        auth::check_tenant_header(&caller, &tenant_header.unwrap_or_default())?;
        let idempotency_key = idempotency::key(req)?;
        let bytes = json_bytes(req)?;
        let (body, type_errors) = parse_json_collecting::<RegistrationRequest>(bytes)?;
        let now = self.clock.now();
        let Checked {
            registration,
            categorization,
            early_hash,
        } = match self.check(body, type_errors, &caller.tenant, now).await {
            Ok(checked) => checked,
            Err(refusal) => {
                // §3.6: a retry of a request that was answered gets that answer again,
                // even when what requests are checked against has changed since (the
                // tenant's hierarchy, a configured rule); a key in use for another body is
                // 422 whatever this body's faults. Asked only on this path, so a request
                // that passes its checks pays no extra read.
                if let Some(key) = &idempotency_key
                    && refusal.status().is_client_error()
                    && let Some(answer) = self
                        .recorded_answer(&caller.tenant, key, bytes, now, request_id)
                        .await
                {
                    return answer;
                }
                return Err(refusal);
            }
        };

        // Every 4xx of the request is behind us: claim the Idempotency-Key, if any (§3.6),
        // if there is time to finish what the claim starts.
        let answer_by = answer_by(req);
        time_to_write(answer_by)?;
        let claim = match idempotency_key {
            None => None,
            Some(key) => {
                let claim = IdempotencyClaim {
                    tenant: caller.tenant.clone(),
                    key,
                    body_hash: self.body_hasher.hash(bytes),
                    token: uuid::Uuid::new_v4().to_string(),
                    now,
                    expires_at: now + chrono::Duration::seconds(idempotency::RETENTION_SECONDS),
                    lock_expires_at: now + chrono::Duration::seconds(idempotency::LOCK_SECONDS),
                };
                // Within its share of the invocation, like every write: a claim DynamoDB
                // applied but never answered would otherwise be cut by the deadline with the
                // key locked for `LOCK_SECONDS`, every retry with it answered 409 until then.
                let claimed = match write_within(answer_by, self.idempotency.claim(&claim)).await {
                    Ok(claimed) => claimed,
                    Err(error @ StoreError::Unavailable(_)) => {
                        // Applied or not: the release replaces only this claim or a record it
                        // could have taken, and a put of this claim arriving after it cannot
                        // take the key.
                        let refusal = storage_failure(error);
                        self.settle_failed_claim(&claim, &refusal, request_id, answer_by)
                            .await;
                        return Err(refusal);
                    }
                    Err(other) => return Err(storage_failure(other)),
                };
                match claimed {
                    ClaimOutcome::Claimed => Some(claim),
                    ClaimOutcome::InProgress => return Err(ApiError::RequestInProgress),
                    ClaimOutcome::Reused => return Err(ApiError::IdempotencyKeyReused),
                    ClaimOutcome::Completed(stored) => {
                        return Ok(replay(stored, &caller.tenant, request_id));
                    }
                }
            }
        };

        let result = self
            .write(
                &caller.tenant,
                registration,
                categorization,
                context,
                now,
                claim.as_ref(),
                early_hash,
                request_id,
                answer_by,
            )
            .await;
        if let (Some(claim), Err(error)) = (&claim, &result) {
            self.settle_failed_claim(claim, error, request_id, answer_by)
                .await;
        }
        result
    }

    /// Steps 1–2 past the body's JSON: every field, then the categorization against the
    /// (cached) hierarchy. On a cache miss the password's hash comes back too.
    /// `type_errors`: values of the wrong JSON type, taken as absent in `body`; answered
    /// together with the rules' findings on the rest (§3.2: all field problems at once).
    async fn check(
        &self,
        body: RegistrationRequest,
        type_errors: Vec<FieldError>,
        tenant: &TenantId,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Checked, ApiError> {
        let registration = validate_typed(
            body,
            type_errors,
            &ValidationContext {
                tenant,
                today: now.date_naive(),
                min_age_years: self.config.min_customer_age,
            },
        )?;

        // A warm function checks the categorization before spending a hash. On a cache miss
        // (cold start, TTL over) the one Query runs while Argon2 hashes (step 3), so the extra
        // round trip adds no wall time — at the price of a hash for a request whose
        // categorization then turns out invalid.
        let (hierarchy, early_hash) = match self.hierarchies.cached(tenant) {
            Some(hit) => (hit, None),
            None => {
                let (hierarchy, hash) = tokio::join!(
                    self.hierarchies.get(tenant),
                    shared::password::hash(registration.password.clone()),
                );
                (hierarchy.map_err(storage_failure)?, Some(hash))
            }
        };
        let categorization = resolve(hierarchy.as_deref(), &registration.categorization)?;
        Ok(Checked {
            registration,
            categorization,
            early_hash,
        })
    }

    /// What the key's live record says instead of a refusal: its answer to replay for this
    /// body, or 422 if the key is in use for another body. `None`: refuse as checked.
    async fn recorded_answer(
        &self,
        tenant: &TenantId,
        key: &str,
        bytes: &[u8],
        now: chrono::DateTime<chrono::Utc>,
        request_id: &str,
    ) -> Option<Result<Response<Body>, ApiError>> {
        let body_hash = self.body_hasher.hash(bytes);
        match self
            .idempotency
            .recorded(tenant, key, &body_hash, now)
            .await
        {
            Ok(Some(ClaimOutcome::Completed(stored))) => {
                Some(Ok(replay(stored, tenant, request_id)))
            }
            Ok(Some(ClaimOutcome::Reused)) => Some(Err(ApiError::IdempotencyKeyReused)),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(request_id, error = %e.detail(), "could not read the idempotency record");
                None
            }
        }
    }

    /// Steps 3–6: hash, code, the one transaction, the e-mail.
    #[allow(clippy::too_many_arguments)]
    async fn write(
        &self,
        tenant: &TenantId,
        registration: NewRegistration,
        categorization: shared::categorization::ResolvedCategorization,
        context: ClientContext,
        now: chrono::DateTime<chrono::Utc>,
        claim: Option<&IdempotencyClaim>,
        early_hash: Option<shared::password::Hashed>,
        request_id: &str,
        answer_by: Option<tokio::time::Instant>,
    ) -> Result<Response<Body>, ApiError> {
        // 3. Argon2id (already done if it ran alongside the hierarchy Query).
        let password_hash = match early_hash {
            Some(hash) => hash,
            None => shared::password::hash(registration.password.clone()).await,
        }
        .map_err(|e| {
            tracing::error!(error = %format!("{e:#}"), "password hashing failed");
            ApiError::Internal
        })?;

        // 4. The activation code: only its keys (keyed hashes) are stored.
        let email_normalized = registration.email.normalized();
        let customer = build_customer(tenant.clone(), registration, categorization, context, now);
        let code = ActivationCode::generate().map_err(|e| {
            tracing::error!(error = %format!("{e:#}"), "activation code generation failed");
            ApiError::Internal
        })?;
        let issued = IssuedCode::new(
            self.hasher.issue_keys(
                tenant,
                &customer.id,
                &code,
                &customer.user.id,
                &email_normalized,
            ),
            now,
            self.code_ttl,
        );

        // 5. One transaction: customer + e-mail marker (+ the idempotency record's response).
        let redirect_url = self.config.redirect_url(&customer.id);
        let location = format!("{}/{}", shared::API_BASE, customer.id);
        let created =
            |delivery: &str| response::created_body(&customer, &redirect_url, delivery, request_id);
        let completion = |body: String, status: u16, location: Option<String>| {
            claim.map(|c| {
                c.completion(StoredResponse {
                    status,
                    body,
                    location,
                })
            })
        };
        let new = NewCustomer {
            email_normalized,
            idempotency: completion(created(delivery_status(true)), 201, Some(location.clone())),
            customer: customer.clone(),
            password_hash,
            code: issued.clone(),
        };
        time_to_write(answer_by)?;
        match write_within(answer_by, self.customers.create_customer(&new)).await {
            Ok(()) => {}
            Err(StoreError::AlreadyExists) => return Err(ApiError::EmailAlreadyExists),
            // The idempotency claim was taken over by a retry: that one will answer.
            Err(StoreError::ConditionFailed) => return Err(ApiError::RequestInProgress),
            // Unreachable after the SDK's retries, the transaction may still have been
            // applied (its answer lost, the retries not through). Answered 503, such a
            // customer would never get its code: a retry meets its e-mail (409) without
            // learning its id, and a keyed retry would replay a 201 saying "SENT".
            // The same holds when it is still unanswered at the end of its share of the
            // invocation, and when DynamoDB is still running it for an SDK retry with the
            // same token (TransactionInProgressException).
            // One consistent read of the e-mail marker, written in the same transaction (and
            // the least personal item to read), tells: it names the fresh id only this request
            // can have written.
            Err(StoreError::Unavailable(cause)) => {
                let owner = self.customers.email_owner(tenant, &new.email_normalized);
                read_back(answer_by, request_id, &customer.id, cause, async {
                    Ok(owner.await?.filter(|owner| *owner == customer.id))
                })
                .await?;
            }
            Err(other) => return Err(storage_failure(other)),
        }
        tracing::info!(request_id, tenant_id = %tenant, customer_id = %customer.id, "customer registered");

        // 6. Send the code; a failed send does not undo the registration (resend exists).
        let message = ActivationMessage {
            to: customer.person.email.clone(),
            tenant: tenant.clone(),
            customer_id: customer.id.clone(),
            code,
            expires_at: issued.expires_at,
        };
        let sent = deliver(self.sender.as_ref(), &message, request_id, answer_by).await;
        let body = created(delivery_status(sent));
        if !sent && let Some(completion) = completion(body.clone(), 201, Some(location.clone())) {
            // Replays must tell the truth about delivery too; but this registration is done,
            // and its 201 must not wait past the deadline for it.
            record_within(
                answer_by,
                request_id,
                "record the delivery failure for replays",
                self.idempotency.complete(&completion),
            )
            .await;
        }
        Ok(raw_json_response(
            StatusCode::CREATED,
            body,
            request_id,
            &[("location", location)],
        ))
    }

    /// After a failure with a claim held: a conflict is recorded for replay (a retry gets the
    /// same 409); anything that wrote nothing releases the claim so a retry can run. Within
    /// [`RECORD_LIMIT`] and the invocation, so it cannot turn the failure's answer into a 503;
    /// unsettled, the claim's lock expires after `LOCK_SECONDS` and a retry takes it over.
    async fn settle_failed_claim(
        &self,
        claim: &IdempotencyClaim,
        error: &ApiError,
        request_id: &str,
        answer_by: Option<tokio::time::Instant>,
    ) {
        let settle = async {
            match error {
                ApiError::RequestInProgress => Ok(()),
                ApiError::EmailAlreadyExists => {
                    let response = error.clone().into_response(request_id);
                    self.idempotency
                        .complete(&claim.completion(StoredResponse {
                            status: response.status().as_u16(),
                            body: body_text(&response),
                            location: None,
                        }))
                        .await
                }
                _ => self.idempotency.release(claim, self.clock.now()).await,
            }
        };
        record_within(
            answer_by,
            request_id,
            "settle the idempotency claim",
            settle,
        )
        .await;
    }
}

/// A write to the key's record once the request's answer is decided (`what`: to log why it
/// did not happen): within [`RECORD_LIMIT`] and the invocation, so it cannot change that
/// answer into a 503.
async fn record_within(
    answer_by: Option<tokio::time::Instant>,
    request_id: &str,
    what: &str,
    write: impl std::future::Future<Output = Result<(), StoreError>>,
) {
    match step_within(answer_by, RECORD_LIMIT, write).await {
        Some(Ok(())) => {}
        Some(Err(e)) => tracing::warn!(request_id, error = %e.detail(), "could not {what}"),
        None => tracing::warn!(request_id, "no time left to {what}"),
    }
}

/// The stored response again, marked as a replay.
fn replay(stored: StoredResponse, tenant: &TenantId, request_id: &str) -> Response<Body> {
    tracing::info!(request_id, tenant_id = %tenant, "idempotent replay");
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut headers = vec![("idempotent-replayed", "true".to_owned())];
    if let Some(location) = stored.location {
        headers.push(("location", location));
    }
    raw_json_response(status, stored.body, request_id, &headers)
}

/// The customer record of a validated registration (fresh ids, status pending).
pub fn build_customer(
    tenant: TenantId,
    r: NewRegistration,
    categorization: shared::categorization::ResolvedCategorization,
    context: ClientContext,
    now: chrono::DateTime<chrono::Utc>,
) -> Customer {
    let first = r.first_name.as_str().to_owned();
    let last = r.last_name.as_str().to_owned();
    Customer {
        id: uuid::Uuid::new_v4().to_string(),
        tenant_id: tenant,
        customer_type: "CT_PERSON".into(),
        customer_status: CustomerStatus::RegistrationCompleted,
        person: Person {
            id: uuid::Uuid::new_v4().to_string(),
            full_name: format!("{first} {last}"),
            first_name: first,
            last_name: last,
            email: r.email.as_str().to_owned(),
            phone: r.phone.as_str().to_owned(),
            date_of_birth: r.date_of_birth.map(|d| d.to_string()),
            gender: r.gender,
            nationality: r.nationality.map(|c| c.as_str().to_owned()),
            place_of_birth: r.place_of_birth,
            pincode: r.pincode,
            addresses: r.addresses,
            contacts: r.contacts,
        },
        user: User {
            id: uuid::Uuid::new_v4().to_string(),
            username: r.email.as_str().to_owned(),
            email: r.email.as_str().to_owned(),
            roles: r.roles,
            status: UserStatus::PendingActivation,
        },
        categorization,
        audit: shared::registration::Audit {
            registration: context,
        },
        created_at: now,
        updated_at: now,
    }
}

impl shared::lambda::Handler for Registration {
    fn handle(&self, req: Request) -> impl std::future::Future<Output = Response<Body>> + Send {
        Registration::handle(self, req)
    }

    fn route(&self, req: &Request) -> &'static str {
        route(req)
    }
}

/// The label a request is logged and counted under: this function serves one route.
pub fn route(_: &Request) -> &'static str {
    ROUTE
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use shared::clock::FixedClock;
    use shared::store::IdempotencyCompletion;
    use shared::store::memory::MemoryStore;

    fn demo_hierarchy() -> shared::categorization::Hierarchy {
        let demo: serde_json::Value =
            serde_json::from_str(include_str!("../../../../shared/spec/demo-hierarchy.json"))
                .unwrap();
        serde_json::from_value(demo["tenants"][0].clone()).unwrap()
    }

    fn function() -> (Registration, Arc<MemoryStore>) {
        let mailbox =
            std::env::temp_dir().join(format!("registration-test-{}.jsonl", uuid::Uuid::new_v4()));
        let sender = Arc::new(shared::activation::delivery::MailboxSender::new(mailbox));
        function_with(None, sender)
    }

    /// A function over a memory store with the demo hierarchy, reading hierarchies from
    /// `hierarchies` instead when given, sending codes through `sender`.
    fn function_with(
        hierarchies: Option<Arc<dyn HierarchySource>>,
        sender: Arc<dyn CodeSender>,
    ) -> (Registration, Arc<MemoryStore>) {
        let store = Arc::new(MemoryStore::with_hierarchy(demo_hierarchy()));
        let function = function_over(&store, hierarchies, store.clone(), sender);
        (function, store)
    }

    /// A function over `store`, with `hierarchies` and `idempotency` in place of its own when
    /// given.
    fn function_over(
        store: &Arc<MemoryStore>,
        hierarchies: Option<Arc<dyn HierarchySource>>,
        idempotency: Arc<dyn IdempotencyStore>,
        sender: Arc<dyn CodeSender>,
    ) -> Registration {
        let config = Config::from_lookup(|n| (n == "TABLE_NAME").then(|| "t".to_owned())).unwrap();
        let clock = Arc::new(FixedClock::at(
            chrono::Utc
                .with_ymd_and_hms(2026, 11, 25, 10, 0, 0)
                .unwrap(),
        ));
        let settings = ActivationSettings::for_mailbox(
            std::env::temp_dir().join("unused.jsonl"),
            std::time::Duration::from_secs(3600),
        );
        let hierarchies = hierarchies.unwrap_or_else(|| store.clone());
        Registration::new(
            config,
            &settings,
            hierarchies,
            store.clone(),
            idempotency,
            sender,
            clock,
        )
    }

    fn body(response: &Response<Body>) -> serde_json::Value {
        match response.body() {
            Body::Text(text) => serde_json::from_str(text).unwrap(),
            other => panic!("unexpected body {other:?}"),
        }
    }

    /// Every registration event in `events/` and the answer it must get.
    #[tokio::test]
    async fn registration_events_get_their_contract_answers() {
        let cases: [(&str, &str, u16, &str); 8] = [
            (
                "contract-example",
                include_str!("../../../events/registration-contract-example.json"),
                201,
                "",
            ),
            (
                "flat-object",
                include_str!("../../../events/registration-flat-object.json"),
                400,
                "FLAT_OBJECT_NOT_SUPPORTED",
            ),
            (
                "password-mismatch",
                include_str!("../../../events/registration-password-mismatch.json"),
                400,
                "VALIDATION_FAILED",
            ),
            (
                "malformed-json",
                include_str!("../../../events/registration-malformed-json.json"),
                400,
                "MALFORMED_JSON",
            ),
            (
                "missing-headers",
                include_str!("../../../events/registration-missing-headers.json"),
                400,
                "MISSING_HEADERS",
            ),
            (
                "tenant-mismatch",
                include_str!("../../../events/registration-tenant-mismatch.json"),
                403,
                "TENANT_MISMATCH",
            ),
            (
                "insufficient-scope",
                include_str!("../../../events/registration-insufficient-scope.json"),
                403,
                "INSUFFICIENT_SCOPE",
            ),
            (
                "no-claims",
                include_str!("../../../events/registration-no-claims.json"),
                401,
                "UNAUTHORIZED",
            ),
        ];
        for (name, event, status, code) in cases {
            let (function, store) = function();
            let request = lambda_http::request::from_str(event).expect(name);
            let response = function.handle(request).await;
            let json = body(&response);
            assert_eq!(response.status().as_u16(), status, "{name}: {json}");
            assert_eq!(json["code"], status, "{name}");
            assert!(response.headers().contains_key("x-request-id"), "{name}");
            if status == 201 {
                assert_eq!(store.customer_count(), 1, "{name}");
                assert_eq!(json["data"]["customerStatus"], "CS_REGISTRATION_COMPLETED");
            } else {
                assert_eq!(json["data"]["error"], code, "{name}");
                assert_eq!(store.customer_count(), 0, "{name}: nothing written");
            }
        }
    }

    /// The contract example under another e-mail and category id, as an API Gateway request.
    fn with_category(category: &str, email: &str) -> Request {
        let event = include_str!("../../../events/registration-contract-example.json")
            .replace("marcus.jensen@example.com", email)
            .replace("MEDIUM_RISK_INDIVIDUAL", category);
        lambda_http::request::from_str(&event).unwrap()
    }

    /// A cold function hashes while it fetches the hierarchy; a warm one resolves first. Both
    /// must answer an unknown category with the same 400 and write nothing, and a good one after.
    #[tokio::test]
    async fn an_unknown_category_is_refused_cold_and_warm() {
        let (function, store) = function();
        for (round, email) in ["cold@example.com", "warm@example.com"].iter().enumerate() {
            let response = function.handle(with_category("PLATINUM", email)).await;
            let json = body(&response);
            assert_eq!(response.status().as_u16(), 400, "round {round}: {json}");
            assert_eq!(json["data"]["error"], "CATEGORY_NOT_FOUND", "round {round}");
            assert_eq!(store.customer_count(), 0, "round {round}");
        }
        let good = function
            .handle(with_category("MEDIUM_RISK_INDIVIDUAL", "good@example.com"))
            .await;
        assert_eq!(good.status().as_u16(), 201, "{}", body(&good));
        assert_eq!(store.customer_count(), 1);
    }

    /// The contract example's event with its body changed by `change`.
    fn with_body(change: impl FnOnce(&mut serde_json::Value)) -> Request {
        let mut event: serde_json::Value = serde_json::from_str(include_str!(
            "../../../events/registration-contract-example.json"
        ))
        .unwrap();
        let mut body: serde_json::Value =
            serde_json::from_str(event["body"].as_str().unwrap()).unwrap();
        change(&mut body);
        event["body"] = serde_json::Value::String(body.to_string());
        lambda_http::request::from_str(&event.to_string()).unwrap()
    }

    /// §3.2: all field problems together, a value of the wrong type among them (before, the
    /// first wrong type was the only error reported).
    #[tokio::test]
    async fn wrong_types_are_reported_with_every_other_field_problem() {
        let (function, store) = function();
        let response = function
            .handle(with_body(|b| {
                let person = &mut b["individualCustomer"]["person"];
                person["firstName"] = serde_json::json!(42);
                person["email"] = serde_json::json!("bad");
                person["addresses"][0]["country"] = serde_json::json!(["LT"]);
                b["firstName"] = serde_json::json!(true);
            }))
            .await;
        let json = body(&response);
        assert_eq!(response.status().as_u16(), 400, "{json}");
        assert_eq!(json["data"]["error"], "VALIDATION_FAILED");
        let mut found: Vec<(String, String)> = json["data"]["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["field"].as_str().unwrap().to_owned(),
                    e["code"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        found.sort();
        let p = "individualCustomer.person";
        let mut expected: Vec<(String, String)> = [
            ("firstName", "INVALID_FIELD"),
            (&format!("{p}.addresses[0].country"), "INVALID_FIELD"),
            (&format!("{p}.email"), "INVALID_EMAIL"),
            (&format!("{p}.firstName"), "INVALID_FIELD"),
        ]
        .iter()
        .map(|(f, c)| ((*f).to_owned(), (*c).to_owned()))
        .collect();
        // Whatever else the rules find (the top-level e-mail copy now disagrees) may be
        // listed too; each of these exactly once.
        found.retain(|(f, _)| expected.iter().any(|(e, _)| e == f));
        expected.sort();
        assert_eq!(found, expected, "{json}");
        assert_eq!(store.customer_count(), 0);

        // A person that is not an object is named as such; a flat body with a wrong type at
        // the top level is the flat body of §3.2.
        let response = function
            .handle(with_body(|b| {
                b["individualCustomer"]["person"] = serde_json::json!("Marcus");
            }))
            .await;
        let json = body(&response);
        assert_eq!(json["data"]["error"], "VALIDATION_FAILED", "{json}");
        assert_eq!(
            json["data"]["errors"][0]["field"],
            "individualCustomer.person"
        );
        let response = function
            .handle(with_body(|b| {
                let person = b["individualCustomer"]["person"].take();
                b["individualCustomer"]
                    .as_object_mut()
                    .unwrap()
                    .remove("person");
                b["phone"] = serde_json::json!(37060012345_u64);
                b["firstName"] = person["firstName"].clone();
            }))
            .await;
        assert_eq!(
            body(&response)["data"]["error"],
            "FLAT_OBJECT_NOT_SUPPORTED"
        );
    }

    /// A wrong type makes no second error under another name, and a person whose only field
    /// has the wrong type is named, not taken for a flat body.
    #[tokio::test]
    async fn a_wrong_type_is_reported_once_whatever_names_the_value() {
        let (function, _) = function();
        let errors = |response: &Response<Body>| -> Vec<String> {
            let json = body(response);
            json["data"]["errors"]
                .as_array()
                .unwrap_or_else(|| panic!("{json}"))
                .iter()
                .map(|e| {
                    format!(
                        "{} {}",
                        e["field"].as_str().unwrap(),
                        e["code"].as_str().unwrap()
                    )
                })
                .collect()
        };
        type Change = fn(&mut serde_json::Value);
        let cases: [(Change, &[&str]); 5] = [
            (
                |b| {
                    let top = b.as_object_mut().unwrap();
                    top.remove("password");
                    top.remove("matchingPassword");
                    b["individualCustomer"]["user"]["password"] = serde_json::json!(123);
                    b["individualCustomer"]["user"]["matchingPassword"] =
                        serde_json::json!("SecurePass123!");
                },
                &["individualCustomer.user.password INVALID_FIELD"],
            ),
            (
                |b| {
                    let person = b["individualCustomer"]["person"].as_object_mut().unwrap();
                    person.remove("phone");
                    person["contacts"] = serde_json::json!(["+37060012345"]);
                    b["phone"] = serde_json::json!(37060012345_u64);
                },
                &[
                    "phone INVALID_FIELD",
                    "individualCustomer.person.contacts[0] INVALID_FIELD",
                ],
            ),
            (
                |b| {
                    b["individualCustomer"]["person"] = serde_json::json!({"firstName": 42});
                },
                &["individualCustomer.person.firstName INVALID_FIELD"],
            ),
            // A name is required in the person whatever its top-level copy holds.
            (
                |b| {
                    let person = b["individualCustomer"]["person"].as_object_mut().unwrap();
                    person.remove("firstName");
                    b["firstName"] = serde_json::json!(5);
                },
                &[
                    "firstName INVALID_FIELD",
                    "individualCustomer.person.firstName INVALID_NAME",
                ],
            ),
            // A confirmation of the wrong type does not hide that the password is missing.
            (
                |b| {
                    let top = b.as_object_mut().unwrap();
                    top.remove("password");
                    top["matchingPassword"] = serde_json::json!(123);
                },
                &["matchingPassword INVALID_FIELD", "password WEAK_PASSWORD"],
            ),
        ];
        for (change, expected) in cases {
            let response = function.handle(with_body(change)).await;
            assert_eq!(response.status().as_u16(), 400);
            assert_eq!(errors(&response), expected);
        }
    }

    struct Unavailable;

    #[async_trait::async_trait]
    impl HierarchySource for Unavailable {
        async fn load_hierarchy(
            &self,
            _: &TenantId,
        ) -> Result<Option<shared::categorization::Hierarchy>, StoreError> {
            Err(StoreError::Unavailable(anyhow::anyhow!("throttled")))
        }
    }

    /// The hierarchy read failing while the password hashes: 503, nothing written.
    #[tokio::test]
    async fn an_unreadable_hierarchy_is_a_503_even_after_the_hash() {
        let (function, store) = function_with(Some(Arc::new(Unavailable)), Arc::new(FailingSender));
        let response = function
            .handle(with_category("MEDIUM_RISK_INDIVIDUAL", "down@example.com"))
            .await;
        let json = body(&response);
        assert_eq!(response.status().as_u16(), 503, "{json}");
        assert_eq!(json["data"]["error"], "SERVICE_UNAVAILABLE");
        assert_eq!(store.customer_count(), 0);
    }

    struct FailingSender;

    #[async_trait::async_trait]
    impl CodeSender for FailingSender {
        async fn send(&self, _: &ActivationMessage) -> anyhow::Result<()> {
            anyhow::bail!("SES SendEmail failed (service error, code MessageRejected)")
        }
    }

    #[tokio::test]
    async fn a_failed_send_keeps_the_registration_and_says_so() {
        let (function, store) = function_with(None, Arc::new(FailingSender));
        let event = include_str!("../../../events/registration-contract-example.json");
        let response = function
            .handle(lambda_http::request::from_str(event).unwrap())
            .await;
        assert_eq!(response.status(), 201);
        assert_eq!(body(&response)["data"]["activationCodeDelivery"], "FAILED");
        assert_eq!(
            store.customer_count(),
            1,
            "a failed send does not undo the registration"
        );
    }

    #[tokio::test]
    async fn a_second_registration_of_the_same_email_is_a_conflict() {
        let (function, store) = function();
        let event = include_str!("../../../events/registration-contract-example.json");
        let first = function
            .handle(lambda_http::request::from_str(event).unwrap())
            .await;
        assert_eq!(first.status(), 201);
        let second = function
            .handle(lambda_http::request::from_str(event).unwrap())
            .await;
        assert_eq!(second.status(), 409);
        assert_eq!(body(&second)["data"]["error"], "EMAIL_ALREADY_EXISTS");
        assert_eq!(store.customer_count(), 1);
    }

    /// Idempotency-Key records in a memory store, except that settling a claim after a
    /// failure (recording its answer, or releasing it) never answers.
    struct NeverSettles(Arc<MemoryStore>);

    #[async_trait::async_trait]
    impl IdempotencyStore for NeverSettles {
        async fn claim(&self, claim: &IdempotencyClaim) -> Result<ClaimOutcome, StoreError> {
            self.0.claim(claim).await
        }
        async fn complete(&self, _: &IdempotencyCompletion) -> Result<(), StoreError> {
            std::future::pending().await
        }
        async fn release(
            &self,
            _: &IdempotencyClaim,
            _: chrono::DateTime<chrono::Utc>,
        ) -> Result<(), StoreError> {
            std::future::pending().await
        }
        async fn recorded(
            &self,
            tenant: &TenantId,
            key: &str,
            body_hash: &shared::store::BodyHash,
            now: chrono::DateTime<chrono::Utc>,
        ) -> Result<Option<ClaimOutcome>, StoreError> {
            self.0.recorded(tenant, key, body_hash, now).await
        }
    }

    /// A keyed registration that fails after its claim must still be answered when settling
    /// the claim hangs: the settling gets `RECORD_LIMIT`, and the request its 409.
    #[tokio::test]
    async fn a_claim_that_cannot_be_settled_does_not_hold_the_answer() {
        let (plain, store) = function();
        let event = include_str!("../../../events/registration-contract-example.json");
        let first = plain
            .handle(lambda_http::request::from_str(event).unwrap())
            .await;
        assert_eq!(first.status(), 201);
        let keyed = function_over(
            &store,
            None,
            Arc::new(NeverSettles(store.clone())),
            Arc::new(FailingSender),
        );
        let mut event: serde_json::Value = serde_json::from_str(event).unwrap();
        event["headers"]["idempotency-key"] = serde_json::json!("settle-hangs");
        let request = lambda_http::request::from_str(&event.to_string()).unwrap();
        let answered =
            tokio::time::timeout(std::time::Duration::from_secs(30), keyed.handle(request)).await;
        let second = answered.expect("answered, though the claim was never settled");
        assert_eq!(second.status(), 409, "{}", body(&second));
        assert_eq!(body(&second)["data"]["error"], "EMAIL_ALREADY_EXISTS");
        assert_eq!(store.customer_count(), 1);
    }
}
