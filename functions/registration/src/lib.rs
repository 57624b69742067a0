//! Registration (§3): validate the whole body, resolve the categorization against the tenant's
//! hierarchy, hash the password with Argon2id, and write the customer and its e-mail marker in
//! one transaction. Expected failures are designed 4xx responses; nothing is written before
//! every check has passed.

mod response;

use std::sync::Arc;
use std::time::Instant;

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use shared::api::auth::{self, scopes};
use shared::api::body::{json_bytes, parse_json};
use shared::api::client_context::{self, ClientContext};
use shared::api::outcome::{finish, storage_failure};
use shared::api::routes::{self, Function};
use shared::api::{ApiError, json_response, request_id};
use shared::categorization::{HierarchyCache, resolve};
use shared::clock::Clock;
use shared::config::Config;
use shared::domain::TenantId;
use shared::registration::{
    Customer, CustomerStatus, NewRegistration, Person, RegistrationRequest, User, UserStatus,
    ValidationContext, validate,
};
use shared::store::{CustomerStore, HierarchySource, NewCustomer, StoreError};

const ROUTE: &str = "POST /registration";

/// The registration function, built once per cold start.
pub struct Registration {
    config: Config,
    hierarchies: HierarchyCache,
    customers: Arc<dyn CustomerStore>,
    clock: Arc<dyn Clock>,
}

impl Registration {
    pub fn new(
        config: Config,
        hierarchies: Arc<dyn HierarchySource>,
        customers: Arc<dyn CustomerStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let hierarchies = HierarchyCache::new(hierarchies, config.hierarchy_cache_ttl);
        Self {
            config,
            hierarchies,
            customers,
            clock,
        }
    }

    /// Handles one API Gateway request; never fails (errors are designed responses).
    pub async fn handle(&self, req: Request) -> Response<Body> {
        let started = Instant::now();
        let request_id = request_id(&req);
        let mut tenant = None;
        let result = self.register(&req, &request_id, &mut tenant).await;
        finish(
            ROUTE,
            &request_id,
            tenant.as_ref().map(TenantId::as_str),
            started,
            result,
        )
    }

    async fn register(
        &self,
        req: &Request,
        request_id: &str,
        tenant_out: &mut Option<TenantId>,
    ) -> Result<Response<Body>, ApiError> {
        // 1. Route, token, headers, body: nothing touched yet.
        let (route, _) = routes::resolve(req.method().as_str(), req.uri().path())?;
        if route.function != Function::Registration {
            return Err(ApiError::RouteNotFound);
        }
        let caller = auth::caller(req, &self.config.tenant_claim, scopes::CUSTOMERS_WRITE)?;
        *tenant_out = Some(caller.tenant.clone());
        let tenant_header = auth::tenant_header(req);
        let context = client_context::extract(req, tenant_header.is_none())?;
        auth::check_tenant_header(&caller, tenant_header.unwrap_or_default())?;
        let body: RegistrationRequest = parse_json(json_bytes(req)?)?;
        let now = self.clock.now();
        let registration = validate(
            body,
            &ValidationContext {
                tenant: &caller.tenant,
                today: now.date_naive(),
                min_age_years: self.config.min_customer_age,
            },
        )?;

        // 2. Categorization against the (cached) hierarchy.
        let hierarchy = self
            .hierarchies
            .get(&caller.tenant)
            .await
            .map_err(storage_failure)?;
        let categorization = resolve(hierarchy.as_deref(), &registration.categorization)?;

        // 3. Argon2id.
        let password_hash = shared::password::hash(registration.password.clone())
            .await
            .map_err(|e| {
                tracing::error!(error = %format!("{e:#}"), "password hashing failed");
                ApiError::Internal
            })?;

        // 4. One transaction: customer + e-mail marker.
        let customer = build_customer(
            caller.tenant.clone(),
            registration.clone(),
            categorization,
            context,
            now,
        );
        let new = NewCustomer {
            email_normalized: registration.email.normalized(),
            customer,
            password_hash,
        };
        match self.customers.create_customer(&new).await {
            Ok(()) => {}
            Err(StoreError::AlreadyExists) => return Err(ApiError::EmailAlreadyExists),
            Err(other) => return Err(storage_failure(other)),
        }
        tracing::info!(request_id, tenant_id = %caller.tenant, customer_id = %new.customer.id, "customer registered");

        let redirect_url = self.config.redirect_url(&new.customer.id);
        let location = format!("{}/{}", shared::API_BASE, new.customer.id);
        Ok(json_response(
            StatusCode::CREATED,
            "B2C individual account created successfully. Redirect to activate-account page",
            Some(&redirect_url),
            response::registered(&new.customer, &redirect_url),
            request_id,
            &[("location", location)],
        ))
    }
}

fn build_customer(
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
            activation: None,
        },
        created_at: now,
        updated_at: now,
    }
}
