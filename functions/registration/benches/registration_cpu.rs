//! CPU of one registration outside Argon2 and I/O (`make bench`): the contract's example body
//! parsed, validated, categorized against the demo hierarchy (smart selection included), turned
//! into the customer record by the function's own `build_customer`, its DynamoDB item built and
//! the 201 body serialized by `response::created_body`.

use std::hint::black_box;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use registration::build_customer;
use registration::response::created_body;
use serde_json::Value;
use shared::api::body::parse_json;
use shared::api::client_context::ClientContext;
use shared::categorization::{Hierarchy, resolve};
use shared::domain::TenantId;
use shared::registration::{RegistrationRequest, ValidationContext, validate};

const EVENT: &str = include_str!("../../../events/registration-contract-example.json");
const DEMO_HIERARCHY: &str = include_str!("../../../../shared/spec/demo-hierarchy.json");

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
        let body = created_body(&customer, &redirect_url, "SENT", "req-bench");
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
