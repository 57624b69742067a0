//! CPU of one registration outside Argon2 and I/O (`make bench`): the contract's example body
//! parsed, validated, categorized against the demo hierarchy (smart selection included), turned
//! into the customer record, its DynamoDB item built and the 201 body serialized, as
//! functions/registration does it (`build_customer`, `response::registered`).

use std::hint::black_box;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use lambda_http::http::StatusCode;
use serde_json::{Value, json};
use shared::api::body::parse_json;
use shared::api::client_context::ClientContext;
use shared::api::{body_text, json_response};
use shared::categorization::{Hierarchy, ResolvedCategorization, resolve};
use shared::domain::TenantId;
use shared::registration::{
    Audit, Customer, CustomerStatus, NewRegistration, Person, RegistrationRequest, User,
    UserStatus, ValidationContext, timestamp, validate,
};

const EVENT: &str = include_str!("../../events/registration-contract-example.json");
const DEMO_HIERARCHY: &str = include_str!("../../../shared/spec/demo-hierarchy.json");
const CREATED_MESSAGE: &str =
    "B2C individual account created successfully. Redirect to activate-account page";

/// functions/registration `build_customer`.
fn build_customer(
    tenant: TenantId,
    r: NewRegistration,
    categorization: ResolvedCategorization,
    context: ClientContext,
    now: DateTime<Utc>,
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
        audit: Audit {
            registration: context,
            activation: None,
        },
        created_at: now,
        updated_at: now,
    }
}

/// functions/registration `response::registered`.
fn registered(customer: &Customer, redirect_url: &str, delivery: &str) -> Value {
    let p = &customer.person;
    let u = &customer.user;
    json!({
        "id": customer.id,
        "tenantId": customer.tenant_id,
        "customerType": customer.customer_type,
        "customerStatus": customer.customer_status,
        "individual": true,
        "organization": false,
        "person": {
            "id": p.id,
            "firstName": p.first_name,
            "lastName": p.last_name,
            "fullName": p.full_name,
            "email": p.email,
            "phone": p.phone,
            "dateOfBirth": p.date_of_birth,
            "gender": p.gender,
            "nationality": p.nationality,
            "placeOfBirth": p.place_of_birth,
            "addresses": p.addresses,
            "contacts": p.contacts,
        },
        "user": {
            "id": u.id,
            "username": u.username,
            "email": u.email,
            "roles": u.roles,
            "status": u.status,
            "isActive": u.status == UserStatus::Active,
        },
        "categorization": customer.categorization,
        "activationCodeDelivery": delivery,
        "redirectUrl": redirect_url,
        "createdAt": timestamp(customer.created_at),
        "updatedAt": timestamp(customer.updated_at),
    })
}

struct Fixture {
    body: Vec<u8>,
    tenant: TenantId,
    hierarchy: Hierarchy,
    context: ClientContext,
    now: DateTime<Utc>,
}

impl Fixture {
    fn load() -> Self {
        let event: Value = serde_json::from_str(EVENT).expect("event JSON");
        let demo: Value = serde_json::from_str(DEMO_HIERARCHY).expect("demo hierarchy JSON");
        Self {
            body: event["body"].as_str().expect("body").as_bytes().to_vec(),
            tenant: TenantId::parse("97e7ff29-15f3-49ef-9681-3bbfcce4f6cd").expect("tenant"),
            hierarchy: serde_json::from_value(demo["tenants"][0].clone()).expect("hierarchy"),
            context: ClientContext {
                forwarded_from: "web-app".into(),
                platform: "web".into(),
                device_id: "device-1234".into(),
                user_agent: "Mozilla/5.0 (X11; Linux x86_64)".into(),
                ip: Some("203.0.113.10".into()),
                source_ip: Some("203.0.113.10".into()),
            },
            now: Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap(),
        }
    }

    /// One registration's CPU work; returns the item and the 201 body.
    fn register(
        &self,
    ) -> (
        std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
        String,
    ) {
        let request: RegistrationRequest = parse_json(&self.body).expect("parses");
        let registration = validate(
            request,
            &ValidationContext {
                tenant: &self.tenant,
                today: self.now.date_naive(),
                min_age_years: 18,
            },
        )
        .expect("valid");
        let categorization =
            resolve(Some(&self.hierarchy), &registration.categorization).expect("resolves");
        let customer = build_customer(
            self.tenant.clone(),
            registration,
            categorization,
            self.context.clone(),
            self.now,
        );
        let item = serde_dynamo::to_item(&customer).expect("item");
        let redirect_url = format!("/auth/activate-account?customerId={}", customer.id);
        let body = body_text(&json_response(
            StatusCode::CREATED,
            CREATED_MESSAGE,
            Some(&redirect_url),
            registered(&customer, &redirect_url, "SENT"),
            "req-bench",
            &[],
        ));
        (item, body)
    }
}

fn registration_cpu(c: &mut Criterion) {
    let fixture = Fixture::load();
    let (item, body) = fixture.register();
    assert!(item.contains_key("person"), "the item holds the customer");
    assert!(body.contains("CS_REGISTRATION_COMPLETED"), "{body}");
    c.bench_function("registration_cpu", |b| {
        b.iter(|| black_box(black_box(&fixture).register()))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(50);
    targets = registration_cpu
}
criterion_main!(benches);
