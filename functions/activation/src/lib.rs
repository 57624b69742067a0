//! Activation (§4): `POST /{customerId}/activation` is one conditional write that counts the
//! attempt (never past the limit) and, for the right code and user, switches to active, and
//! `POST /{customerId}/activation/code` issues a fresh code within the resend limits.
//! Customers of other tenants do not exist here (404), so ids cannot be probed.

use std::sync::Arc;
use std::time::Instant;

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::json;
use shared::activation::code::{ActivationCode, CodeHasher, UserRef};
use shared::activation::delivery::{ActivationMessage, CodeSender, deliver};
use shared::activation::settings::ActivationSettings;
use shared::activation::{ActivationAttempt, ActivationOutcome, IssuedCode, rules};
use shared::api::auth::{self, Caller, scopes};
use shared::api::body::{json_bytes, parse_json_collecting};
use shared::api::client_context::{self, ClientContext};
use shared::api::outcome::{
    answer_by, finish, in_request_span, read_back, record_route, storage_failure, time_to_write,
    within_deadline, write_within,
};
use shared::api::routes::{self, Function};
use shared::api::{ApiError, FieldError, json_response, request_id};
use shared::clock::Clock;
use shared::config::Config;
use shared::domain::{TenantId, clean_text};
use shared::registration::{CustomerStatus, timestamp};
use shared::store::{CustomerStore, StoreError};

const ACTIVATE: &str = "POST /{customerId}/activation";
const RESEND: &str = "POST /{customerId}/activation/code";
const UNROUTED: &str = "-";

/// `{"userId", "code"}`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ActivationBody {
    user_id: Option<String>,
    code: Option<String>,
}

/// A resend's `{"userId"}` (§4.3): a `code` in it is an unknown field, ignored whatever its
/// type (§1.4).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResendBody {
    user_id: Option<String>,
}

/// The activation function, built once per cold start.
pub struct Activation {
    config: Config,
    code_ttl: chrono::Duration,
    hasher: CodeHasher,
    customers: Arc<dyn CustomerStore>,
    sender: Arc<dyn CodeSender>,
    clock: Arc<dyn Clock>,
}

/// The checked common part of both routes.
struct Checked {
    caller: Caller,
    context: ClientContext,
    customer_id: String,
    user_id: String,
    code: Option<String>,
}

impl Activation {
    pub fn new(
        config: Config,
        activation: &ActivationSettings,
        customers: Arc<dyn CustomerStore>,
        sender: Arc<dyn CodeSender>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            config,
            code_ttl: chrono::Duration::from_std(activation.code_ttl)
                .unwrap_or(chrono::Duration::hours(24)),
            hasher: activation.hasher(),
            customers,
            sender,
            clock,
        }
    }

    /// Handles one API Gateway request; never fails (errors are designed responses).
    pub async fn handle(&self, req: Request) -> Response<Body> {
        let started = Instant::now();
        let request_id = request_id(&req);
        in_request_span(&request_id, self.answer(&req, &request_id, started)).await
    }

    async fn answer(&self, req: &Request, request_id: &str, started: Instant) -> Response<Body> {
        let mut tenant = None;
        let (route, result) = match routes::from_request(req) {
            Ok((route, params)) if route.function == Function::Activation => {
                let label = label(&route);
                record_route(label);
                let customer_id = routes::param(&params, "customerId")
                    .unwrap_or_default()
                    .to_owned();
                let result = if label == RESEND {
                    within_deadline(req, self.resend(req, request_id, customer_id, &mut tenant))
                        .await
                } else {
                    within_deadline(
                        req,
                        self.activate(req, request_id, customer_id, &mut tenant),
                    )
                    .await
                };
                (label, result)
            }
            // Not an activation route (the gateway sends none here): counted as a request, not
            // as a failed activation.
            Ok(_) => (UNROUTED, Err(ApiError::RouteNotFound)),
            Err(e) => (UNROUTED, Err(e)),
        };
        finish(
            route,
            request_id,
            tenant.as_ref().map(TenantId::as_str),
            started,
            result,
        )
    }

    fn check(
        &self,
        req: &Request,
        customer_id: String,
        tenant_out: &mut Option<TenantId>,
        needs_code: bool,
    ) -> Result<Checked, ApiError> {
        let caller = auth::caller(req, &self.config.tenant_claim, scopes::CUSTOMERS_ACTIVATE)?;
        *tenant_out = Some(caller.tenant.clone());
        let tenant_header = auth::tenant_header(req);
        let context = client_context::extract(req, tenant_header.is_none())?;
        auth::check_tenant_header(&caller, &tenant_header.unwrap_or_default())?;
        // Every field problem in one answer (§1.3): a value of the wrong type is reported as
        // such, and not again as missing.
        let bytes = json_bytes(req)?;
        let (body, mut errors) = if needs_code {
            parse_json_collecting::<ActivationBody>(bytes)?
        } else {
            let (resend, errors) = parse_json_collecting::<ResendBody>(bytes)?;
            let body = ActivationBody {
                user_id: resend.user_id,
                code: None,
            };
            (body, errors)
        };
        let mistyped = |field: &str| errors.iter().any(|e| e.field == field);
        let (user_id_mistyped, code_mistyped) = (mistyped("userId"), mistyped("code"));
        let user_id = match body.user_id.as_deref().map(|u| clean_text(u, 254)) {
            Some(Ok(u)) => u,
            Some(Err(e)) => {
                errors.push(FieldError::new("userId", "INVALID_FIELD", e.to_string()));
                String::new()
            }
            None => {
                if !user_id_mistyped {
                    errors.push(FieldError::new("userId", "INVALID_FIELD", "is required"));
                }
                String::new()
            }
        };
        if needs_code
            && !code_mistyped
            && body
                .code
                .as_deref()
                .and_then(ActivationCode::parse)
                .is_none()
        {
            errors.push(FieldError::new(
                "code",
                "INVALID_FIELD",
                "must be the 8-digit code from the e-mail",
            ));
        }
        if !errors.is_empty() {
            return Err(ApiError::Validation(errors));
        }
        // Customer ids are UUIDs; anything else names no customer.
        let customer_id = uuid::Uuid::parse_str(&customer_id)
            .map(|u| u.hyphenated().to_string())
            .map_err(|_| ApiError::CustomerNotFound)?;
        Ok(Checked {
            caller,
            context,
            customer_id,
            user_id,
            code: body.code,
        })
    }

    async fn activate(
        &self,
        req: &Request,
        request_id: &str,
        customer_id: String,
        tenant_out: &mut Option<TenantId>,
    ) -> Result<Response<Body>, ApiError> {
        let checked = self.check(req, customer_id, tenant_out, true)?;
        let code = checked
            .code
            .as_deref()
            .and_then(ActivationCode::parse)
            .ok_or(ApiError::Internal)?;
        let answer_by = answer_by(req);
        time_to_write(answer_by)?;
        let now = self.clock.now();
        let attempt = ActivationAttempt {
            id: uuid::Uuid::new_v4().to_string(),
            code_key: self.hasher.key(
                &checked.caller.tenant,
                &checked.customer_id,
                &code,
                &UserRef::given(&checked.user_id),
            ),
            tenant: checked.caller.tenant.clone(),
            customer_id: checked.customer_id.clone(),
            now,
            context: checked.context,
            max_attempts: rules::MAX_ATTEMPTS,
        };
        let outcome = match write_within(answer_by, self.customers.activate(&attempt)).await {
            Ok(outcome) => outcome,
            // Counted though its answer was lost (or still unanswered when its share of the
            // invocation ended)? Answered 503, a right code would have activated the customer
            // and its retry would meet 409; a wrong one would have used an attempt unseen.
            Err(StoreError::Unavailable(cause)) => {
                let counted = self.customers.counted_outcome(&attempt);
                read_back(answer_by, request_id, &checked.customer_id, cause, counted).await?
            }
            Err(other) => return Err(storage_failure(other)),
        };
        match outcome {
            ActivationOutcome::Activated { user_id } => {
                tracing::info!(request_id, tenant_id = %checked.caller.tenant, customer_id = %checked.customer_id, "customer activated");
                Ok(json_response(
                    StatusCode::OK,
                    "Customer activated",
                    None,
                    json!({
                        "customerId": checked.customer_id,
                        "userId": user_id,
                        "customerStatus": CustomerStatus::Active,
                        "activationStatus": "ACTIVATED",
                        "user": { "status": "ACTIVE", "isActive": true },
                        "activatedAt": timestamp(now),
                    }),
                    request_id,
                    &[],
                ))
            }
            ActivationOutcome::NotFound => Err(ApiError::CustomerNotFound),
            ActivationOutcome::AlreadyActive => Err(ApiError::AlreadyActive),
            ActivationOutcome::TooManyAttempts => Err(ApiError::TooManyAttempts),
            ActivationOutcome::Expired => Err(ApiError::CodeExpired),
            ActivationOutcome::Invalid { attempts_remaining } => {
                Err(ApiError::InvalidCode { attempts_remaining })
            }
        }
    }

    async fn resend(
        &self,
        req: &Request,
        request_id: &str,
        customer_id: String,
        tenant_out: &mut Option<TenantId>,
    ) -> Result<Response<Body>, ApiError> {
        let checked = self.check(req, customer_id, tenant_out, false)?;
        let tenant = &checked.caller.tenant;
        let state = self
            .customers
            .activation_state(tenant, &checked.customer_id)
            .await
            .map_err(storage_failure)?
            .filter(|s| s.is_user(&checked.user_id))
            .ok_or(ApiError::CustomerNotFound)?;
        if state.status == CustomerStatus::Active {
            return Err(ApiError::AlreadyActive);
        }
        let now = self.clock.now();
        let history = rules::resend(&state.resend, state.code_issued_at, now).map_err(
            |retry_after_seconds| ApiError::ResendLimited {
                retry_after_seconds,
            },
        )?;
        let code = ActivationCode::generate().map_err(|e| {
            tracing::error!(error = %format!("{e:#}"), "activation code generation failed");
            ApiError::Internal
        })?;
        let issued = IssuedCode::new(
            self.hasher.issue_keys(
                tenant,
                &checked.customer_id,
                &code,
                &state.user_id,
                &state.email_normalized,
            ),
            now,
            self.code_ttl,
        );
        let answer_by = answer_by(req);
        time_to_write(answer_by)?;
        let reissued = self.customers.reissue_code(
            tenant,
            &checked.customer_id,
            state.version,
            &issued,
            &history,
        );
        match write_within(answer_by, reissued).await {
            Ok(()) => {}
            // Applied though its answer was lost (or still unanswered when its share of the
            // invocation ended)? Answered 503, the new code would never be sent, the old one
            // would no longer work, and a retry would be refused for 60 s.
            Err(StoreError::Unavailable(cause)) => {
                let held = self
                    .customers
                    .holds_code(tenant, &checked.customer_id, &issued);
                read_back(answer_by, request_id, &checked.customer_id, cause, async {
                    Ok(held.await?.then_some(()))
                })
                .await?;
            }
            // Another resend or the activation got there first.
            Err(StoreError::ConditionFailed) => {
                let now_state = self
                    .customers
                    .activation_state(tenant, &checked.customer_id)
                    .await
                    .map_err(storage_failure)?;
                return Err(match now_state {
                    Some(s) if s.status == CustomerStatus::Active => ApiError::AlreadyActive,
                    // Another resend: the limits, read again, say how long to wait (the 60 s
                    // since that code, or the rest of the day if it was the day's fifth).
                    Some(s) => ApiError::ResendLimited {
                        retry_after_seconds: rules::resend(&s.resend, s.code_issued_at, now)
                            .err()
                            .unwrap_or(1),
                    },
                    None => ApiError::CustomerNotFound,
                });
            }
            Err(other) => return Err(storage_failure(other)),
        }
        let message = ActivationMessage {
            to: state.email.clone(),
            tenant: tenant.clone(),
            customer_id: checked.customer_id.clone(),
            code,
            expires_at: issued.expires_at,
        };
        let sent = deliver(self.sender.as_ref(), &message, request_id, answer_by).await;
        tracing::info!(request_id, tenant_id = %tenant, customer_id = %checked.customer_id, "activation code reissued");
        Ok(json_response(
            StatusCode::ACCEPTED,
            "A new activation code was issued",
            None,
            json!({
                "customerId": checked.customer_id,
                "codeExpiresAt": timestamp(issued.expires_at),
                "activationCodeDelivery": if sent { "SENT" } else { "FAILED" },
            }),
            request_id,
            &[],
        ))
    }
}

impl shared::lambda::Handler for Activation {
    fn handle(&self, req: Request) -> impl std::future::Future<Output = Response<Body>> + Send {
        Activation::handle(self, req)
    }

    fn route(&self, req: &Request) -> &'static str {
        route(req)
    }
}

/// The label a request is logged and counted under.
pub fn route(req: &Request) -> &'static str {
    routes::from_request(req).map_or(UNROUTED, |(route, _)| label(&route))
}

/// The label a routed request is logged and counted under.
fn label(route: &routes::Route) -> &'static str {
    match route.function {
        Function::Activation if route.path.ends_with("/code") => RESEND,
        Function::Activation => ACTIVATE,
        _ => UNROUTED,
    }
}
