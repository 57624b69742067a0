//! End-to-end tests: HTTP through the local gateway (JWT authorizer, v2.0 events, the real
//! handler functions) against the DynamoDB-compatible server that `make test` starts (moto).
//! One table per test run, created from `template.yaml`; one tenant and one gateway per test.

mod support;

#[path = "e2e/hostile.rs"]
mod hostile;

#[path = "e2e/faults.rs"]
mod faults;

use std::collections::HashSet;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};
use support::{Stack, contract_body, demo_hierarchy};

#[tokio::test]
async fn the_contract_example_registers_a_customer_with_one_customer_and_one_email_item() {
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let response = stack
        .register(
            &tenant,
            &contract_body(&tenant, "marcus.jensen@example.com"),
        )
        .await;

    assert_eq!(response.status, 201, "{}", response);
    let data = &response.body["data"];
    assert_eq!(response.body["code"], 201);
    assert_eq!(data["tenantId"], tenant.as_str());
    assert_eq!(data["customerType"], "CT_PERSON");
    assert_eq!(data["customerStatus"], "CS_REGISTRATION_COMPLETED");
    assert_eq!(data["individual"], true);
    assert_eq!(data["person"]["fullName"], "Marcus Jensen");
    assert_eq!(data["person"]["phone"], "+37060012345");
    assert_eq!(data["person"]["nationality"], "LT");
    assert_eq!(data["person"]["addresses"][0]["country"], "LT");
    assert_eq!(data["user"]["username"], "marcus.jensen@example.com");
    assert_eq!(data["user"]["roles"], json!(["ACCOUNT_OWNER", "USER"]));
    assert_eq!(data["user"]["status"], "PENDING_ACTIVATION");
    assert_eq!(data["user"]["isActive"], false);
    assert_eq!(
        data["categorization"]["categoryId"],
        "MEDIUM_RISK_INDIVIDUAL"
    );
    assert_eq!(
        data["categorization"]["id"],
        "e50bb9ad-6a97-41da-8e66-4c3c0f7e2a3d"
    );
    let id = data["id"].as_str().unwrap();
    assert_eq!(
        response
            .headers
            .get("location")
            .and_then(|v| v.to_str().ok()),
        Some(format!("/api/v2.1/customer/individual/{id}").as_str())
    );
    assert_eq!(
        response.body["redirectUrl"],
        format!("/auth/activate-account?customerId={id}")
    );
    assert!(response.headers.contains_key("x-request-id"));
    let text = response.body.to_string();
    assert!(
        !text.contains("SecurePass123!"),
        "the password must never be returned"
    );
    assert!(!text.contains("argon2"), "nor its hash");

    let items = stack.items_of(&tenant).await;
    assert_eq!(items.len(), 2, "{items:?}");
    let customer = items
        .iter()
        .find(|i| i["SK"] == "CUSTOMER")
        .expect("customer item");
    assert_eq!(customer["PK"], format!("TENANT#{tenant}#CUSTOMER#{id}"));
    assert!(
        customer["passwordHash"]
            .as_str()
            .unwrap()
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
    );
    assert_eq!(customer["audit"]["registration"]["deviceId"], "device-e2e");
    let marker = items
        .iter()
        .find(|i| i["SK"] == "EMAIL")
        .expect("e-mail item");
    assert_eq!(
        marker["PK"],
        format!("TENANT#{tenant}#EMAIL#marcus.jensen@example.com")
    );
    assert_eq!(marker["customerId"], id);
}

#[tokio::test]
async fn smart_selection_fills_the_mandatory_keys_the_client_left_out() {
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let mut body = contract_body(&tenant, "defaults@example.com");
    body["individualCustomer"]
        .as_object_mut()
        .unwrap()
        .remove("categorization");
    body.as_object_mut().unwrap().remove("customerCategory");
    let response = stack.register(&tenant, &body).await;
    assert_eq!(response.status, 201, "{}", response);
    let categorization = &response.body["data"]["categorization"];
    assert_eq!(
        categorization["categoryId"], "MEDIUM_RISK_INDIVIDUAL",
        "the tenant default"
    );
    let profile = &categorization["features"][0];
    assert_eq!(profile["featureCode"], "MEDIUM_RISK_PROFILE");
    let params: Vec<(String, String, String)> = profile["parametrization"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().into(),
                p["value"].as_str().unwrap().into(),
                p["source"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expected = [
        ("riskLevel", "MEDIUM"),
        ("riskScore", "55"),
        ("pep", "false"),
        ("sanctionsCheck", "STANDARD"),
        ("monitoring", "WEEKLY"),
        ("monthlyLimit", "20000"),
    ];
    for (i, (name, value)) in expected.iter().enumerate() {
        assert_eq!(
            params[i],
            ((*name).into(), (*value).into(), "DEFAULT".into())
        );
    }
}

#[tokio::test]
async fn a_flat_object_is_refused_and_nothing_is_written() {
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let mut body = contract_body(&tenant, "flat@example.com");
    body.as_object_mut().unwrap().remove("individualCustomer");
    let response = stack.register(&tenant, &body).await;
    assert_eq!(response.status, 400);
    assert_eq!(response.body["data"]["error"], "FLAT_OBJECT_NOT_SUPPORTED");
    assert!(
        response.body["message"]
            .as_str()
            .unwrap()
            .contains("individualCustomer.person")
    );
    assert_eq!(stack.items_of(&tenant).await.len(), 0);
}

#[tokio::test]
async fn every_field_problem_is_reported_in_one_answer() {
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let mut body = contract_body(&tenant, "many@example.com");
    body["matchingPassword"] = json!("SomethingElse123!");
    body["individualCustomer"]["person"]["email"] = json!("not-an-email");
    body["individualCustomer"]["person"]["firstName"] = json!("R2D2");
    body["individualCustomer"]["person"]["dateOfBirth"] = json!("1990-02-30");
    body["individualCustomer"]["person"]["gender"] = json!("ROBOT");
    let response = stack.register(&tenant, &body).await;
    assert_eq!(response.status, 400);
    assert_eq!(response.body["data"]["error"], "VALIDATION_FAILED");
    let errors: HashSet<(String, String)> = response.body["data"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap().into(),
                e["code"].as_str().unwrap().into(),
            )
        })
        .collect();
    for expected in [
        ("matchingPassword", "PASSWORD_MISMATCH"),
        ("individualCustomer.person.email", "INVALID_EMAIL"),
        ("individualCustomer.person.firstName", "INVALID_NAME"),
        (
            "individualCustomer.person.dateOfBirth",
            "INVALID_DATE_OF_BIRTH",
        ),
        ("individualCustomer.person.gender", "INVALID_GENDER"),
    ] {
        assert!(
            errors.contains(&(expected.0.into(), expected.1.into())),
            "{expected:?} in {errors:?}"
        );
    }
    assert!(!response.body.to_string().contains("SecurePass123!"));
    assert_eq!(stack.items_of(&tenant).await.len(), 0);
}

#[tokio::test]
async fn an_email_differing_only_in_case_is_a_conflict() {
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let first = stack
        .register(&tenant, &contract_body(&tenant, "case@example.com"))
        .await;
    assert_eq!(first.status, 201, "{}", first);
    let second = stack
        .register(&tenant, &contract_body(&tenant, "CASE@Example.COM"))
        .await;
    assert_eq!(second.status, 409, "{}", second);
    assert_eq!(second.body["data"]["error"], "EMAIL_ALREADY_EXISTS");
    assert_eq!(stack.items_of(&tenant).await.len(), 2);
}

/// One mailbox, one customer: other spellings of a registered address are refused (quoted
/// local parts, which SES cannot deliver to either) or meet the first customer (a domain in
/// Unicode, full-width or `xn--` form).
#[tokio::test]
async fn other_spellings_of_a_registered_mailbox_do_not_make_a_second_customer() {
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let register = |email: &str| {
        let body = contract_body(&tenant, email);
        let (stack, tenant) = (&stack, &tenant);
        async move { stack.register(tenant, &body).await }
    };
    assert_eq!(register("marcus.jensen@example.com").await.status, 201);
    for quoted in [
        "\"marcus.jensen\"@example.com",
        "\"marcus\\.jensen\"@example.com",
    ] {
        let reply = register(quoted).await;
        assert_eq!(reply.status, 400, "{quoted}: {}", reply);
        assert_eq!(
            reply.body["data"]["errors"][0]["field"], "individualCustomer.person.email",
            "{}",
            reply.body
        );
    }
    let fullwidth = register("Marcus.Jensen@ｅｘａｍｐｌｅ.com").await;
    assert_eq!(fullwidth.status, 409, "{}", fullwidth);
    assert_eq!(fullwidth.body["data"]["error"], "EMAIL_ALREADY_EXISTS");

    let unicode = register("jm@müller.de").await;
    assert_eq!(unicode.status, 201, "{}", unicode);
    assert_eq!(
        unicode.body["data"]["person"]["email"], "jm@xn--mller-kva.de",
        "stored and mailed in the form SES delivers to"
    );
    let customer = unicode.body["data"]["id"].as_str().unwrap();
    assert_eq!(
        stack
            .mail()
            .iter()
            .find(|m| m["customerId"] == customer)
            .map(|m| m["to"].clone()),
        Some(json!("jm@xn--mller-kva.de"))
    );
    let ascii = register("JM@XN--MLLER-KVA.de").await;
    assert_eq!(ascii.status, 409, "{}", ascii);
    // The customer names their user with the address as they know it.
    let code = stack.code_for(customer);
    let activated = stack
        .activate(&tenant, customer, "JM@Müller.de", &code)
        .await;
    assert_eq!(activated.status, 200, "{}", activated);
    // Two customers (two items each), nothing else.
    assert_eq!(stack.items_of(&tenant).await.len(), 4);
}

#[tokio::test]
async fn the_same_email_in_another_tenant_is_a_different_customer() {
    let stack = Stack::start().await;
    let a = stack.tenant_with_demo_hierarchy().await;
    let b = stack.tenant_with_demo_hierarchy().await;
    assert_eq!(
        stack
            .register(&a, &contract_body(&a, "shared@example.com"))
            .await
            .status,
        201
    );
    assert_eq!(
        stack
            .register(&b, &contract_body(&b, "shared@example.com"))
            .await
            .status,
        201
    );
}

#[tokio::test]
async fn twenty_concurrent_registrations_of_one_email_create_exactly_one_customer() {
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let body = contract_body(&tenant, "race@example.com");
    let attempts = (0..20).map(|_| stack.register(&tenant, &body));
    let responses = futures::future::join_all(attempts).await;
    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 409),
        "{statuses:?}"
    );
    let items = stack.items_of(&tenant).await;
    assert_eq!(items.iter().filter(|i| i["SK"] == "CUSTOMER").count(), 1);
    assert_eq!(items.iter().filter(|i| i["SK"] == "EMAIL").count(), 1);
}

#[tokio::test]
async fn x_tenant_id_must_match_the_token() {
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let token = stack.token(&tenant, None);
    let response = stack
        .post_raw(
            support::REGISTRATION,
            &token,
            "someone-else",
            &contract_body(&tenant, "m@example.com").to_string(),
        )
        .await;
    assert_eq!(response.status, 403);
    assert_eq!(response.body["data"]["error"], "TENANT_MISMATCH");
    let mut body = contract_body(&tenant, "m@example.com");
    body["individualCustomer"]["tenantId"] = json!("someone-else");
    let response = stack.register(&tenant, &body).await;
    assert_eq!(response.status, 403);
    assert_eq!(response.body["data"]["error"], "TENANT_MISMATCH");
    assert_eq!(stack.items_of(&tenant).await.len(), 0);
}

#[tokio::test]
async fn a_token_without_the_route_scope_is_forbidden() {
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let token = stack.token(&tenant, Some(&["onboarding/categorization.read"]));
    let response = stack
        .post_raw(
            support::REGISTRATION,
            &token,
            &tenant,
            &contract_body(&tenant, "s@example.com").to_string(),
        )
        .await;
    assert_eq!(response.status, 403);
    assert_eq!(response.body["data"]["error"], "INSUFFICIENT_SCOPE");
    assert_eq!(stack.items_of(&tenant).await.len(), 0);
}

#[tokio::test]
async fn missing_client_context_headers_are_all_named() {
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let token = stack.token(&tenant, None);
    let response = stack
        .http
        .post(format!("{}{}", stack.base, support::REGISTRATION))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .header("user-agent", "e2e")
        .body(contract_body(&tenant, "h@example.com").to_string())
        .send()
        .await
        .unwrap();
    let response = support::Reply::read(response).await;
    assert_eq!(response.status, 400);
    assert_eq!(response.body["data"]["error"], "MISSING_HEADERS");
    assert_eq!(
        response.body["data"]["missingHeaders"],
        json!(["X-Tenant-ID", "X-Forwarded-From", "platform", "deviceId"])
    );
}

#[tokio::test]
async fn an_unknown_category_is_refused() {
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let mut body = contract_body(&tenant, "cat@example.com");
    body["individualCustomer"]["categorization"]["id"] = json!("PLATINUM");
    body.as_object_mut().unwrap().remove("customerCategory");
    let response = stack.register(&tenant, &body).await;
    assert_eq!(response.status, 400);
    assert_eq!(response.body["data"]["error"], "CATEGORY_NOT_FOUND");
    assert_eq!(stack.items_of(&tenant).await.len(), 0);
}

#[tokio::test]
async fn parametrization_values_outside_the_allowed_ones_are_refused() {
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let mut body = contract_body(&tenant, "params@example.com");
    body["individualCustomer"]["categorization"]["categoryFeatureRelations"][0]["parametrization"] =
        json!([{"name": "riskScore", "value": "101"}, {"name": "riskLevel", "value": "EXTREME"}]);
    let response = stack.register(&tenant, &body).await;
    assert_eq!(response.status, 400, "{}", response);
    assert_eq!(response.body["data"]["error"], "CATEGORIZATION_INVALID");
    let invalid = response.body["data"]["invalidValues"].as_object().unwrap();
    assert!(
        invalid.contains_key("MEDIUM_RISK_PROFILE.riskScore"),
        "{invalid:?}"
    );
    assert!(
        invalid.contains_key("MEDIUM_RISK_PROFILE.riskLevel"),
        "{invalid:?}"
    );
    assert_eq!(response.body["data"]["missingKeys"], json!([]));
    assert_eq!(stack.items_of(&tenant).await.len(), 0);
}

#[tokio::test]
async fn the_hierarchy_lookup_serves_the_callers_tenant_only() {
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let own = stack
        .get(&support::hierarchy_path(&tenant), &tenant, None)
        .await;
    assert_eq!(own.status, 200, "{}", own);
    assert_eq!(own.body["message"], "Hierarchy retrieved successfully");
    assert_eq!(own.body["data"]["tenantId"], tenant.as_str());
    assert_eq!(
        own.body["data"]["defaultCategoryId"],
        "MEDIUM_RISK_INDIVIDUAL"
    );
    assert_eq!(
        own.body["data"]["features"]["MEDIUM_RISK_PROFILE"]["allowedValues"]["riskScore"],
        json!(["0-100"])
    );
    let other = stack
        .get(&support::hierarchy_path("tenant_cloudvault"), &tenant, None)
        .await;
    assert_eq!(other.status, 403);
    assert_eq!(other.body["data"]["error"], "TENANT_MISMATCH");

    let bare = format!("bare-{}", uuid::Uuid::new_v4().simple());
    let missing = stack
        .get(&support::hierarchy_path(&bare), &bare, None)
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["data"]["error"], "CATEGORIZATION_NOT_FOUND");
}

#[tokio::test]
async fn the_gateway_refuses_missing_tokens_and_answers_unknown_routes_in_the_envelope() {
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let no_token = stack
        .http
        .get(format!(
            "{}{}",
            stack.base,
            support::hierarchy_path(&tenant)
        ))
        .send()
        .await
        .unwrap();
    let no_token = support::Reply::read(no_token).await;
    assert_eq!(no_token.status, 401);
    assert_eq!(no_token.body["data"]["error"], "UNAUTHORIZED");

    let unknown = stack
        .get(
            "/api/v2.1/customer/individual/nothing/here/at/all",
            &tenant,
            None,
        )
        .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.body["data"]["error"], "ROUTE_NOT_FOUND");

    let wrong_method = stack.get(support::REGISTRATION, &tenant, None).await;
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.body["data"]["error"], "METHOD_NOT_ALLOWED");
}

/// HTTP API base64-encodes a body whose media type is not text, `application/*+json`
/// included; the function decodes it (the local gateway encodes the same way).
#[tokio::test]
async fn a_json_body_of_a_vendor_media_type_arrives_base64_encoded_and_registers() {
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let token = stack.token(&tenant, None);
    let response = stack
        .post_typed(
            support::REGISTRATION,
            &token,
            &tenant,
            "application/vnd.api+json",
            contract_body(&tenant, "vendor.type@example.com").to_string(),
        )
        .await;
    assert_eq!(response.status, 201, "{}", response);
}

#[tokio::test]
async fn bodies_that_are_not_json_are_refused_with_their_codes() {
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let token = stack.token(&tenant, None);
    let cases: [(&str, String, u16, &str); 4] = [
        (
            "application/json",
            "{\"individualCustomer\": ".into(),
            400,
            "MALFORMED_JSON",
        ),
        ("text/plain", "{}".into(), 415, "UNSUPPORTED_MEDIA_TYPE"),
        (
            "application/json",
            format!("{{\"x\":\"{}\"}}", "a".repeat(70_000)),
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        (
            "application/json",
            "{\"individualCustomer\":{\"person\":[]}}".into(),
            400,
            "VALIDATION_FAILED",
        ),
    ];
    for (content_type, body, status, code) in cases {
        let response = stack
            .post_typed(support::REGISTRATION, &token, &tenant, content_type, body)
            .await;
        assert_eq!(response.status, status, "{code}: {}", response);
        assert_eq!(response.body["data"]["error"], code);
    }
    assert_eq!(stack.items_of(&tenant).await.len(), 0);
}

// ---- Activation (§4) ----

#[tokio::test]
async fn the_emailed_code_activates_the_customer_once() {
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let id = stack.registered(&tenant, "activate@example.com").await;
    let code = stack.code_for(&id);
    let mail = stack.mail();
    assert_eq!(mail[0]["to"], "activate@example.com");
    assert_eq!(mail[0]["tenantId"], tenant.as_str());

    let reply = stack
        .activate(&tenant, &id, "activate@example.com", &code)
        .await;
    assert_eq!(reply.status, 200, "{}", reply);
    assert_eq!(reply.body["message"], "Customer activated");
    assert_eq!(reply.body["data"]["customerId"], id.as_str());
    assert_eq!(reply.body["data"]["customerStatus"], "CS_ACTIVE");
    assert_eq!(reply.body["data"]["activationStatus"], "ACTIVATED");
    assert_eq!(reply.body["data"]["user"]["isActive"], true);
    let item = stack.customer_item(&tenant, &id).await.unwrap();
    assert_eq!(item["customerStatus"], "CS_ACTIVE");
    assert_eq!(item["user"]["status"], "ACTIVE");
    assert_eq!(item["lastAttempt"]["context"]["deviceId"], "device-e2e");
    assert_eq!(item["lastAttempt"]["at"], reply.body["data"]["activatedAt"]);
    assert_eq!(item["codeAttempts"], 1);
    assert_eq!(item["version"], 2, "the switch is a new version");
    assert_eq!(reply.body["data"]["userId"], item["user"]["id"]);

    let again = stack
        .activate(&tenant, &id, "activate@example.com", &code)
        .await;
    assert_eq!(again.status, 409);
    assert_eq!(again.body["data"]["error"], "ALREADY_ACTIVE");
}

#[tokio::test]
async fn the_user_may_be_named_by_id_or_email_in_any_case() {
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let id = stack.registered(&tenant, "by-id@example.com").await;
    let user_id = stack.customer_item(&tenant, &id).await.unwrap()["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = stack
        .activate(&tenant, &id, &user_id, &stack.code_for(&id))
        .await;
    assert_eq!(reply.status, 200, "{}", reply);

    let other = stack.registered(&tenant, "by-mail@example.com").await;
    let reply = stack
        .activate(
            &tenant,
            &other,
            "BY-MAIL@Example.com",
            &stack.code_for(&other),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply);
}

#[tokio::test]
async fn wrong_codes_count_down_and_the_sixth_attempt_is_refused_even_with_the_right_code() {
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let id = stack.registered(&tenant, "brute@example.com").await;
    let code = stack.code_for(&id);
    let wrong = if code == "00000000" {
        "11111111"
    } else {
        "00000000"
    };
    for remaining in (0..5).rev() {
        let reply = stack
            .activate(&tenant, &id, "brute@example.com", wrong)
            .await;
        assert_eq!(reply.status, 400, "{}", reply);
        assert_eq!(reply.body["data"]["error"], "INVALID_CODE");
        assert_eq!(reply.body["data"]["attemptsRemaining"], remaining);
    }
    let sixth = stack
        .activate(&tenant, &id, "brute@example.com", &code)
        .await;
    assert_eq!(sixth.status, 429, "{}", sixth);
    assert_eq!(sixth.body["data"]["error"], "TOO_MANY_ATTEMPTS");
    assert_eq!(
        stack.customer_item(&tenant, &id).await.unwrap()["customerStatus"],
        "CS_REGISTRATION_COMPLETED"
    );
}

#[tokio::test]
async fn a_user_id_of_someone_else_is_a_wrong_attempt() {
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let id = stack.registered(&tenant, "owner@example.com").await;
    let reply = stack
        .activate(&tenant, &id, "intruder@example.com", &stack.code_for(&id))
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.body["data"]["error"], "INVALID_CODE");
    assert_eq!(reply.body["data"]["attemptsRemaining"], 4);
}

#[tokio::test]
async fn a_resent_code_replaces_the_old_one_and_resets_the_attempts() {
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let id = stack.registered(&tenant, "resend@example.com").await;
    let old = stack.code_for(&id);
    let wrong = if old == "00000000" {
        "11111111"
    } else {
        "00000000"
    };
    assert_eq!(
        stack
            .activate(&tenant, &id, "resend@example.com", wrong)
            .await
            .status,
        400
    );
    let counted = stack.customer_item(&tenant, &id).await.unwrap();
    assert_eq!(counted["attemptIds"].as_array().map(Vec::len), Some(1));
    // A wrong attempt is no new version of the customer: a resend reading the version just
    // before it would otherwise fail its conditional write and answer 429.
    assert_eq!(counted["version"], 1);

    let too_soon = stack.resend(&tenant, &id, "resend@example.com").await;
    assert_eq!(too_soon.status, 429, "{}", too_soon);
    assert_eq!(too_soon.body["data"]["error"], "RESEND_LIMITED");
    assert_eq!(too_soon.headers.get("retry-after").unwrap(), "60");

    stack.advance(60);
    let resent = stack.resend(&tenant, &id, "resend@example.com").await;
    assert_eq!(resent.status, 202, "{}", resent);
    assert_eq!(resent.body["data"]["activationCodeDelivery"], "SENT");
    assert!(
        resent.body["data"]["codeExpiresAt"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let new = stack.code_for(&id);
    assert_eq!(stack.mail().len(), 2);
    let reissued = stack.customer_item(&tenant, &id).await.unwrap();
    assert_eq!(reissued["codeAttempts"], 0);
    assert!(
        reissued["attemptIds"].is_null(),
        "a new code starts with no counted attempts"
    );

    if new != old {
        let with_old = stack
            .activate(&tenant, &id, "resend@example.com", &old)
            .await;
        assert_eq!(with_old.status, 400, "the old code stopped working");
        assert_eq!(with_old.body["data"]["attemptsRemaining"], 4);
    }
    let with_new = stack
        .activate(&tenant, &id, "resend@example.com", &new)
        .await;
    assert_eq!(with_new.status, 200, "{}", with_new);
    stack.advance(60);
    let after = stack.resend(&tenant, &id, "resend@example.com").await;
    assert_eq!(after.status, 409);
    assert_eq!(after.body["data"]["error"], "ALREADY_ACTIVE");
}

/// A resend's body is `{"userId"}` (§4.3): a `code` in it is an unknown field, ignored
/// whatever its type (§1.4), as activation's extra fields are.
#[tokio::test]
async fn a_resend_ignores_a_code_in_its_body_whatever_its_type() {
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let email = "resend-extra@example.com";
    let id = stack.registered(&tenant, email).await;
    let token = stack.token(&tenant, None);
    let path = format!("/api/v2.1/customer/individual/{id}/activation/code");
    for code in [
        json!(12345678),
        json!({ "x": 1 }),
        json!("not a code"),
        json!(null),
    ] {
        stack.advance(61);
        let body = json!({ "userId": email, "code": code }).to_string();
        let reply = stack.post_raw(&path, &token, &tenant, &body).await;
        assert_eq!(reply.status, 202, "code {code}: {reply}");
    }
    assert_eq!(
        stack.mail().len(),
        5,
        "the registration's code and four resends"
    );
}

#[tokio::test]
async fn resends_are_limited_to_five_a_day() {
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let id = stack.registered(&tenant, "daily@example.com").await;
    for _ in 0..5 {
        stack.advance(61);
        let reply = stack.resend(&tenant, &id, "daily@example.com").await;
        assert_eq!(reply.status, 202, "{}", reply);
    }
    stack.advance(61);
    let sixth = stack.resend(&tenant, &id, "daily@example.com").await;
    assert_eq!(sixth.status, 429);
    assert_eq!(sixth.body["data"]["error"], "RESEND_LIMITED");
    let retry: u64 = sixth
        .headers
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 80_000 && retry <= 86_400, "{retry}");
    stack.advance(86_400);
    assert_eq!(
        stack.resend(&tenant, &id, "daily@example.com").await.status,
        202
    );
}

/// "5 per 24 h" holds for any 24 h: four resends at the end of one day leave one for the
/// next day's start, not five (a fixed window starting at the first resend allowed 9 in ~5
/// minutes here).
#[tokio::test]
async fn resends_at_a_day_boundary_stay_within_five_in_any_24_hours() {
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let email = "boundary@example.com";
    let id = stack.registered(&tenant, email).await;
    stack.advance(61);
    assert_eq!(stack.resend(&tenant, &id, email).await.status, 202);
    stack.advance(86_400 - 61 - 5 * 61);
    for _ in 0..4 {
        stack.advance(61);
        assert_eq!(stack.resend(&tenant, &id, email).await.status, 202);
    }
    let retry_after = |reply: &support::Reply| -> i64 {
        assert_eq!(reply.status, 429, "{}", reply);
        assert_eq!(reply.body["data"]["error"], "RESEND_LIMITED");
        reply.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    // Five in the last 24 h until the first resend is a day old, 61 s from now.
    stack.advance(61);
    assert_eq!(retry_after(&stack.resend(&tenant, &id, email).await), 61);
    stack.advance(61);
    assert_eq!(stack.resend(&tenant, &id, email).await.status, 202);
    // The other four have not left: the next comes when the oldest of them is a day old
    // (a fixed window would have started afresh and granted this one and three more).
    stack.advance(61);
    assert_eq!(
        retry_after(&stack.resend(&tenant, &id, email).await),
        86_400 - 4 * 61 - 2 * 61
    );
    let stored = stack.customer_item(&tenant, &id).await.unwrap();
    assert_eq!(stored["resendTimes"].as_array().map(Vec::len), Some(5));
}

/// The 60 s between codes count from the instant a code was issued, though times are stored
/// in whole seconds: a code issued at .900 may be replaced 60 s later, not 59.1 s later.
#[tokio::test]
async fn the_minute_between_codes_is_a_whole_minute_at_any_fraction_of_a_second() {
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let email = "fraction@example.com";
    let whole = stack.clock_now();
    stack.set_clock(whole + chrono::Duration::milliseconds(900));
    let id = stack.registered(&tenant, email).await;
    stack.set_clock(whole + chrono::Duration::seconds(60));
    let early = stack.resend(&tenant, &id, email).await;
    assert_eq!(early.status, 429, "59.1 s after the code: {}", early);
    assert_eq!(early.headers["retry-after"], "1");
    let at = |ms: i64| whole + chrono::Duration::milliseconds(ms);
    stack.set_clock(at(61_300));
    let resent = stack.resend(&tenant, &id, email).await;
    assert_eq!(resent.status, 202, "60.4 s after the code: {}", resent);

    // Likewise from a resend's own time: a code resent at .400 is not replaced 59.8 s later.
    // (Stored rounded up, a limit may end up to a second late: 61.3 is kept as 62.)
    stack.set_clock(at(122_400));
    assert_eq!(stack.resend(&tenant, &id, email).await.status, 202);
    stack.set_clock(at(182_200));
    let early = stack.resend(&tenant, &id, email).await;
    assert_eq!(
        early.status, 429,
        "59.8 s after the last code: {}",
        early.body
    );
    for s in [183_000, 244_000, 305_000] {
        stack.set_clock(at(s));
        assert_eq!(
            stack.resend(&tenant, &id, email).await.status,
            202,
            "at {s} ms"
        );
    }
    // Five resends in the window, the first at 61.3 s: a sixth waits until it is a whole day
    // old, not until a day after the second it was stored in.
    stack.set_clock(at(61_300 + 86_400_000 - 100));
    let early = stack.resend(&tenant, &id, email).await;
    assert_eq!(
        early.status, 429,
        "a day less 0.1 s after the first: {}",
        early.body
    );
    assert_eq!(early.headers["retry-after"], "1");
    stack.set_clock(at(62_000 + 86_400_000));
    let reply = stack.resend(&tenant, &id, email).await;
    assert_eq!(reply.status, 202, "{}", reply);
}

#[tokio::test]
async fn concurrent_right_codes_activate_exactly_once() {
    // §4.2: of concurrent right submissions exactly one gets 200 and the others 409 — also
    // when they outnumber the attempts left (each is an attempt, §4.1): the first one counted
    // switches in the same write, so the others find the customer active, not the attempts
    // spent.
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    for (wrong, n) in [(0, 5), (0, 10), (4, 2), (4, 5)] {
        let email = format!("parallel-{wrong}-{n}@example.com");
        let id = stack.registered(&tenant, &email).await;
        let code = stack.code_for(&id);
        for guess in support::wrong_codes(&code, wrong) {
            assert_eq!(
                stack.activate(&tenant, &id, &email, &guess).await.status,
                400
            );
        }
        let attempts = (0..n).map(|_| stack.activate(&tenant, &id, &email, &code));
        let statuses: Vec<u16> = futures::future::join_all(attempts)
            .await
            .iter()
            .map(|r| r.status)
            .collect();
        let count = |status: u16| statuses.iter().filter(|s| **s == status).count();
        assert_eq!(count(200), 1, "{wrong} wrong, {n} right: {statuses:?}");
        assert_eq!(count(409), n - 1, "{wrong} wrong, {n} right: {statuses:?}");
    }
}

#[tokio::test]
async fn twenty_concurrent_wrong_guesses_never_count_past_five() {
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let id = stack.registered(&tenant, "guesses@example.com").await;
    let code = stack.code_for(&id);
    let guesses: Vec<String> = (0..20u32)
        .map(|i| format!("{:08}", (i * 7919 + 13) % 100_000_000))
        .filter(|g| *g != code)
        .collect();
    let attempts = guesses
        .iter()
        .map(|g| stack.activate(&tenant, &id, "guesses@example.com", g));
    let replies = futures::future::join_all(attempts).await;
    let invalid = replies.iter().filter(|r| r.status == 400).count();
    let limited = replies.iter().filter(|r| r.status == 429).count();
    assert!(
        invalid <= 5,
        "at most five guesses judged wrong, got {invalid}"
    );
    assert_eq!(
        invalid + limited,
        guesses.len(),
        "every other guess is refused"
    );
    assert_eq!(
        stack.customer_item(&tenant, &id).await.unwrap()["codeAttempts"],
        5
    );
    let right = stack
        .activate(&tenant, &id, "guesses@example.com", &code)
        .await;
    assert_eq!(
        right.status, 429,
        "after the limit even the right code is refused"
    );
}

#[tokio::test]
async fn a_burst_of_guesses_gets_no_more_than_five_judged_even_with_the_right_code_in_it() {
    // §4.1: parallel guessing cannot exceed the limit. Every attempt that is judged (a wrong
    // code's 400 or the right code's 200) must have been counted first; the right code, sent
    // last, succeeds only if it got one of the five attempts.
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let id = stack.registered(&tenant, "burst@example.com").await;
    let code = stack.code_for(&id);
    let mut guesses: Vec<String> = (0..40u32)
        .map(|i| format!("{:08}", (i * 104_729 + 7) % 100_000_000))
        .filter(|g| *g != code)
        .take(29)
        .collect();
    guesses.push(code.clone());
    let attempts = guesses
        .iter()
        .map(|g| stack.activate(&tenant, &id, "burst@example.com", g));
    let replies = futures::future::join_all(attempts).await;
    let count = |status: u16| replies.iter().filter(|r| r.status == status).count();
    let (invalid, activated, limited, conflict) = (count(400), count(200), count(429), count(409));
    assert!(
        invalid + activated <= 5,
        "{invalid} wrong guesses and {activated} right ones judged: more than five attempts"
    );
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(
        invalid + activated + limited + conflict,
        guesses.len(),
        "{statuses:?}"
    );
    assert!(
        activated == 1 || conflict == 0,
        "409 only once active: {statuses:?}"
    );
    let right = replies.last().unwrap().status;
    assert!(matches!(right, 200 | 429), "the right code: {right}");
    assert_eq!(right == 200, activated == 1, "{statuses:?}");
    let item = stack.customer_item(&tenant, &id).await.unwrap();
    if activated == 1 {
        assert_eq!(item["customerStatus"], "CS_ACTIVE");
    } else {
        assert_eq!(item["codeAttempts"], 5);
        assert_eq!(item["customerStatus"], "CS_REGISTRATION_COMPLETED");
    }
}

#[tokio::test]
async fn a_code_stored_before_codes_had_keys_needs_a_new_one_which_then_activates() {
    // Before one write judged attempts, a code was stored as one hash (`codeHash`). Such a
    // code cannot be judged by looking its key up: it is refused as expired, uncounted, and
    // a resend issues one that works.
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let email = "before-keys@example.com";
    let id = stack.registered(&tenant, email).await;
    let code = stack.code_for(&id);
    let mut item = stack.customer_raw(&tenant, &id).await;
    let keys = item.remove("codeKeys").expect("codes are stored as keys");
    item.insert("codeHash".into(), AttributeValue::S("ab".repeat(32)));
    stack.put_raw(item.clone()).await;
    // The same with the keys still there: a resend by the earlier version of the functions
    // (running beside this one during a deployment, or after a rollback) wrote its hash but
    // left the keys of the code it replaced.
    let mut both = item;
    both.insert("codeKeys".into(), keys);
    for item in [None, Some(both)] {
        if let Some(item) = item {
            stack.put_raw(item).await;
        }
        let reply = stack.activate(&tenant, &id, email, &code).await;
        assert_eq!(reply.status, 400, "{}", reply);
        assert_eq!(reply.body["data"]["error"], "CODE_EXPIRED");
        assert_eq!(
            stack.customer_item(&tenant, &id).await.unwrap()["codeAttempts"],
            0
        );
    }

    stack.advance(60);
    assert_eq!(stack.resend(&tenant, &id, email).await.status, 202);
    let item = stack.customer_item(&tenant, &id).await.unwrap();
    assert!(item["codeHash"].is_null(), "the old hash is gone");
    assert_eq!(
        item["codeKeys"]["customerStatus"]
            .as_object()
            .map(|keys| keys.len()),
        Some(2),
        "one key for the user id, one for the e-mail"
    );
    let reply = stack
        .activate(&tenant, &id, email, &stack.code_for(&id))
        .await;
    assert_eq!(reply.status, 200, "{}", reply);
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let id = stack.registered(&tenant, "late@example.com").await;
    stack.advance(24 * 3600);
    let reply = stack
        .activate(&tenant, &id, "late@example.com", &stack.code_for(&id))
        .await;
    assert_eq!(reply.status, 400, "{}", reply);
    assert_eq!(reply.body["data"]["error"], "CODE_EXPIRED");
}

#[tokio::test]
async fn a_used_up_code_that_has_expired_is_refused_as_expired() {
    // The contract's table (§4.2) puts "code expired" before "5 wrong attempts used".
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let email = "used-up-late@example.com";
    let id = stack.registered(&tenant, email).await;
    let code = stack.code_for(&id);
    let wrong = if code == "00000000" {
        "00000001"
    } else {
        "00000000"
    };
    for _ in 0..5 {
        let reply = stack.activate(&tenant, &id, email, wrong).await;
        assert_eq!(
            reply.body["data"]["error"], "INVALID_CODE",
            "{}",
            reply.body
        );
    }
    let reply = stack.activate(&tenant, &id, email, &code).await;
    assert_eq!(
        reply.status, 429,
        "used up before it expires: {}",
        reply.body
    );
    stack.advance(24 * 3600);
    let reply = stack.activate(&tenant, &id, email, &code).await;
    assert_eq!(reply.status, 400, "{}", reply);
    assert_eq!(reply.body["data"]["error"], "CODE_EXPIRED");
    assert_eq!(
        stack.customer_item(&tenant, &id).await.unwrap()["codeAttempts"],
        5,
        "refusals are not counted"
    );
}

#[tokio::test]
async fn items_stay_within_the_capacity_units_of_the_cost_table() {
    // README → Cost on paper bills each write by its items' sizes: a transaction 2 WRU per KB
    // of each item, an UpdateItem 1 WRU per KB of the larger of the item before and after,
    // an eventually consistent Query 0.5 RRU per 4 KB. Measured here with a browser's client
    // context and the customer item at its largest: four wrong attempts, then the right one.
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let email = "marcus.jensen@example.com";
    let key = "5b0f7c2e-3d1a-4e8b-9f60-7a2c4d8e1b93";
    let context = [
        ("x-forwarded-from", "web-app"),
        ("platform", "macOS"),
        ("deviceId", "3f0c1a52-8e4b-4d7a-9b61-2c5e8f7d9a10"),
        (
            "user-agent",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 \
             (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        ),
        ("x-forwarded-for", "2001:db8:85a3::8a2e:370:7334"),
    ];
    let keyed = [context.as_slice(), &[("idempotency-key", key)]].concat();
    let reply = stack
        .post_with_context(
            support::REGISTRATION,
            &tenant,
            &contract_body(&tenant, email),
            &keyed,
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply);
    let id = reply.body["data"]["id"].as_str().unwrap().to_owned();
    let size = |item: Option<std::collections::HashMap<String, AttributeValue>>| {
        support::item_size(&item.expect("the item is stored"))
    };
    let marker = size(
        stack
            .raw_item(format!("TENANT#{tenant}#EMAIL#{email}"), "EMAIL")
            .await,
    );
    let record = size(
        stack
            .raw_item(format!("TENANT#{tenant}#IDEMPOTENCY#{key}"), "IDEMPOTENCY")
            .await,
    );
    let registered = support::item_size(&stack.customer_raw(&tenant, &id).await);
    let after = attempt_sizes(&stack, &tenant, &id, email, &context).await;

    // Another customer first uses the day's five resends, which add their times.
    let email = "marcus.jensen.resends@example.com";
    let reply = stack
        .post_with_context(
            support::REGISTRATION,
            &tenant,
            &contract_body(&tenant, email),
            &context,
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply);
    let id = reply.body["data"]["id"].as_str().unwrap().to_owned();
    let mut resent = Vec::new();
    for _ in 0..5 {
        stack.advance(61);
        let reply = stack
            .post_with_context(
                &format!("/api/v2.1/customer/individual/{id}/activation/code"),
                &tenant,
                &json!({ "userId": email }),
                &context,
            )
            .await;
        assert_eq!(reply.status, 202, "{}", reply);
        resent.push(support::item_size(&stack.customer_raw(&tenant, &id).await));
    }
    let after_resends = attempt_sizes(&stack, &tenant, &id, email, &context).await;

    let mut hierarchy = 0;
    for sk in stack.hierarchy_keys(&tenant).await {
        hierarchy += support::item_size(&stack.hierarchy_item(&tenant, &sk).await);
    }
    eprintln!(
        "item sizes (B): customer {registered} registered, {after:?} after each attempt; \
         another {resent:?} after each resend, {after_resends:?} after each attempt; \
         e-mail marker {marker}; idempotency record {record}; hierarchy {hierarchy}"
    );
    const KB: usize = 1024;
    // The cost table's figures: customer 3 KB (registration 2×3 + 2×1 WRU, every attempt and
    // resend 3 WRU; after the day's five resends the last attempts may take 4), marker 1 KB,
    // completed idempotency record 3 KB, hierarchy within one 4 KB read unit.
    let largest = *after.iter().max().unwrap();
    assert!(registered <= 3 * KB, "customer {registered} B");
    assert!(largest <= 3 * KB, "customer at its largest {largest} B");
    assert!(largest > registered, "attempts add to the item: {after:?}");
    assert!(resent.iter().all(|size| *size <= 3 * KB), "{resent:?}");
    assert!(
        after_resends.iter().all(|size| *size <= 4 * KB),
        "{after_resends:?}"
    );
    assert!(marker <= KB, "e-mail marker {marker} B");
    assert!(record <= 3 * KB, "idempotency record {record} B");
    assert!(hierarchy <= 4 * KB, "hierarchy {hierarchy} B");
}

/// The customer item's size after each of four wrong attempts and then the right code.
async fn attempt_sizes(
    stack: &Stack,
    tenant: &str,
    id: &str,
    email: &str,
    context: &[(&str, &str)],
) -> Vec<usize> {
    let code = stack.code_for(id);
    let activation = format!("/api/v2.1/customer/individual/{id}/activation");
    let mut attempts = support::wrong_codes(&code, 4);
    attempts.push(code);
    let mut sizes = Vec::new();
    for (i, attempt) in attempts.iter().enumerate() {
        let body = json!({ "userId": email, "code": attempt });
        let reply = stack
            .post_with_context(&activation, tenant, &body, context)
            .await;
        assert_eq!(
            reply.status,
            if i == 4 { 200 } else { 400 },
            "{}",
            reply.body
        );
        sizes.push(support::item_size(&stack.customer_raw(tenant, id).await));
    }
    sizes
}

#[tokio::test]
async fn another_tenants_token_finds_no_customer_and_changes_nothing() {
    let stack = Stack::start().await;
    let a = stack.tenant_with_demo_hierarchy().await;
    let b = stack.tenant_with_demo_hierarchy().await;
    let id = stack.registered(&a, "isolated@example.com").await;
    let before = stack.customer_item(&a, &id).await.unwrap();
    let code = stack.code_for(&id);
    let reply = stack.activate(&b, &id, "isolated@example.com", &code).await;
    assert_eq!(reply.status, 404, "{}", reply);
    assert_eq!(reply.body["data"]["error"], "CUSTOMER_NOT_FOUND");
    let resend = stack.resend(&b, &id, "isolated@example.com").await;
    assert_eq!(resend.status, 404);
    assert_eq!(
        stack.customer_item(&a, &id).await.unwrap(),
        before,
        "A's customer unchanged"
    );
    assert_eq!(
        stack
            .activate(&a, &id, "isolated@example.com", "12")
            .await
            .status,
        400
    );
    assert_eq!(
        stack
            .activate(&a, "not-a-uuid", "isolated@example.com", &code)
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn no_log_line_carries_personal_data_codes_or_hashes() {
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let email = format!("private-{}@example.com", uuid::Uuid::new_v4().simple());
    let id = stack.registered(&tenant, &email).await;
    let wrong_reply = stack.activate(&tenant, &id, &email, "00000001").await;
    let code = stack.code_for(&id);
    assert_eq!(
        stack.activate(&tenant, &id, &email, &code).await.status,
        200
    );
    let mut bad = contract_body(&tenant, "not an email");
    bad["password"] = json!("Secret-Leak-Check-9");
    stack.register(&tenant, &bad).await;
    let item = stack.customer_item(&tenant, &id).await.unwrap();
    let password_hash = item["passwordHash"].as_str().unwrap().to_owned();

    let logs = support::captured_logs();
    let lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains(&id) || l.contains(&tenant))
        .collect();
    assert!(lines.len() >= 4, "the run logged its requests: {lines:?}");
    // Lines within a request, not only its last one, carry its ids and route.
    let registered = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["message"] == "customer registered" && l["customer_id"] == id.as_str())
        .expect("the registration's own line");
    assert_eq!(
        registered["span"]["route"], "POST /registration",
        "{registered}"
    );
    assert_eq!(
        registered["span"]["tenant_id"],
        tenant.as_str(),
        "{registered}"
    );
    let request_id = registered["request_id"].as_str().unwrap();
    assert_eq!(registered["span"]["request_id"], request_id, "{registered}");
    assert!(
        support::logged_lines_of(request_id)
            .iter()
            .any(|l| l["message"] == "request completed" && l["status"] == 201),
        "the request's last line is in the same span"
    );
    let token = stack.token(&tenant, None);
    for secret in [
        email.as_str(),
        "+37060012345",
        "Marcus",
        "Jensen",
        "SecurePass123!",
        "Secret-Leak-Check-9",
        code.as_str(),
        password_hash.as_str(),
        "$argon2id",
        &token[..40],
    ] {
        assert!(!logs.contains(secret), "a log line contains {secret:?}");
    }
    assert!(
        !logs.contains("@example.com"),
        "no e-mail address in any log line of the run"
    );
    assert_eq!(wrong_reply.status, 400);
}

// ---- Idempotency-Key (§3.6) ----

#[tokio::test]
async fn a_repeated_key_with_the_same_body_replays_the_original_answer_without_writing_or_sending()
{
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let body = contract_body(&tenant, "idem@example.com");
    let first = stack.register_with_key(&tenant, "key-1", &body).await;
    assert_eq!(first.status, 201, "{}", first);
    assert!(first.headers.get("idempotent-replayed").is_none());
    // The same request, serialized differently.
    let reordered: Value = serde_json::from_str(&body.to_string()).unwrap();
    let again = stack.register_with_key(&tenant, "key-1", &reordered).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.headers.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(again.body, first.body, "the original body again");
    assert_eq!(again.headers.get("location"), first.headers.get("location"));
    let items = stack.items_of(&tenant).await;
    assert_eq!(items.iter().filter(|i| i["SK"] == "CUSTOMER").count(), 1);
    assert_eq!(stack.mail().len(), 1, "nothing is sent twice");
    let record = items.iter().find(|i| i["SK"] == "IDEMPOTENCY").unwrap();
    assert_eq!(record["status"], "COMPLETED");
    let expires = record["expiresAt"].as_i64().unwrap();
    assert!(
        (expires - stack.clock_now().timestamp() - 86_400).abs() <= 1,
        "kept 24 h"
    );
    // The body holds the password: the record keeps a keyed hash of it, not the SHA-256 of
    // its canonical form, which anyone who reads the table could test password guesses on.
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&map[k])))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    use sha2::Digest;
    let plain = hex::encode(sha2::Sha256::digest(sorted(&body).to_string().as_bytes()));
    assert_eq!(record["bodyHash"].as_str().map(str::len), Some(64));
    assert_ne!(record["bodyHash"], plain.as_str());
}

#[tokio::test]
async fn a_repeated_key_with_another_body_is_refused() {
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    assert_eq!(
        stack
            .register_with_key(&tenant, "key-2", &contract_body(&tenant, "a@example.com"))
            .await
            .status,
        201
    );
    let other = stack
        .register_with_key(&tenant, "key-2", &contract_body(&tenant, "b@example.com"))
        .await;
    assert_eq!(other.status, 422);
    assert_eq!(other.body["data"]["error"], "IDEMPOTENCY_KEY_REUSED");
    // Another body that is also invalid: still 422 (§3.6), not its validation error.
    let mut invalid = contract_body(&tenant, "c@example.com");
    invalid["matchingPassword"] = json!("Mismatch123!!x");
    let reused = stack.register_with_key(&tenant, "key-2", &invalid).await;
    assert_eq!(reused.status, 422, "{}", reused);
    assert_eq!(reused.body["data"]["error"], "IDEMPOTENCY_KEY_REUSED");
    assert_eq!(
        stack
            .items_of(&tenant)
            .await
            .iter()
            .filter(|i| i["SK"] == "CUSTOMER")
            .count(),
        1
    );
}

/// `onboarding-admin create-table` on a table that exists: its keys and billing are left,
/// but a table without TTL (a first run that failed between its two calls) gets the
/// template's, or idempotency records would never expire.
#[tokio::test]
async fn create_table_gives_an_existing_table_without_ttl_its_ttl() {
    let stack = Stack::start().await;
    let template = include_str!("../../../template.yaml");
    let ttl = |enabled: bool| {
        aws_sdk_dynamodb::types::TimeToLiveSpecification::builder()
            .attribute_name("expiresAt")
            .enabled(enabled)
            .build()
            .unwrap()
    };
    let status = async || {
        let described = stack
            .client
            .describe_time_to_live()
            .table_name(&stack.table)
            .send()
            .await
            .unwrap();
        let description = described.time_to_live_description().unwrap();
        (
            description.time_to_live_status().cloned(),
            description.attribute_name().map(str::to_owned),
        )
    };
    use aws_sdk_dynamodb::types::TimeToLiveStatus;
    assert_eq!(
        status().await,
        (Some(TimeToLiveStatus::Enabled), Some("expiresAt".into()))
    );
    stack
        .client
        .update_time_to_live()
        .table_name(&stack.table)
        .time_to_live_specification(ttl(false))
        .send()
        .await
        .unwrap();
    assert_ne!(status().await.0, Some(TimeToLiveStatus::Enabled));
    let created = admin::create_table(&stack.client, template, &stack.table)
        .await
        .unwrap();
    assert!(!created, "the table existed");
    assert_eq!(
        status().await,
        (Some(TimeToLiveStatus::Enabled), Some("expiresAt".into()))
    );
    // Already on: nothing to do, the same answer.
    assert!(
        !admin::create_table(&stack.client, template, &stack.table)
            .await
            .unwrap()
    );
}

/// `onboarding-admin put-hierarchy` with several tenants goes on past one it cannot write,
/// and names it: the others are written, and running the file again is safe.
#[tokio::test]
async fn put_hierarchy_goes_on_past_a_tenant_it_cannot_write() {
    let stack = Stack::start().await;
    let broken = format!("t-{}", uuid::Uuid::new_v4().simple());
    let fine = format!("t-{}", uuid::Uuid::new_v4().simple());
    // A header put by hand, without a readable version: the replacement's guard refuses it.
    stack
        .put_raw(
            [
                ("PK", format!("TENANT#{broken}#CATEGORIZATION")),
                ("SK", "TENANT".to_owned()),
                ("version", "not a number".to_owned()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), AttributeValue::S(v)))
            .collect(),
        )
        .await;
    let hierarchies = [demo_hierarchy(&broken), demo_hierarchy(&fine)];
    // Twice, as an operator would after the first run's error: the same outcome, the fine
    // tenant's hierarchy replaced again (a new version).
    for version in [1, 2] {
        let mut reported = Vec::new();
        let outcome = admin::put_hierarchies(&stack.store, &hierarchies, |h, result| {
            let put = result.as_ref().ok().map(|put| put.version);
            reported.push((h.tenant_id.to_string(), put));
        })
        .await;
        assert_eq!(
            reported,
            [(broken.clone(), None), (fine.clone(), Some(version))]
        );
        let error = format!("{:#}", outcome.unwrap_err());
        assert!(
            error.contains(&format!(
                "1 of 2 tenants not put ({broken}); the others were"
            )),
            "{error}"
        );
        let lookup = stack
            .get(&support::hierarchy_path(&fine), &fine, None)
            .await;
        assert_eq!(lookup.status, 200, "{lookup}");
    }
    // All failing: no "others".
    let outcome = admin::put_hierarchies(&stack.store, &hierarchies[..1], |_, _| {}).await;
    let error = format!("{:#}", outcome.unwrap_err());
    assert!(
        error.starts_with(&format!("1 of 1 tenants not put ({broken}). ")),
        "{error}"
    );
}

/// Rotating the activation key (README → Operating), each step a stack of fresh functions on
/// one table: `a` alone, `b` added as next, `b` promoted with `a` kept as previous, `b` alone.
/// During a step, functions of the step before still run (warm ones keep the keys of their
/// cold start): a code issued at one step activates through the functions one step before or
/// after it, and a keyed registration's retry is replayed by them. What the runbook's waits
/// let expire would be lost: a code issued under `a` alone once `b` is current, a record
/// written under `a` once `a` is dropped.
#[tokio::test]
async fn the_activation_key_rotates_in_steps_without_losing_a_pending_code_or_a_replay() {
    let (a, b) = ("a".repeat(40), "b".repeat(40));
    let s0 = Stack::start_with_keys(None, &a).await;
    let next = format!(r#"{{"current":"{a}","next":"{b}"}}"#);
    let previous = format!(r#"{{"current":"{b}","previous":"{a}"}}"#);
    let s1 = Stack::start_with_keys(Some(&s0), &next).await;
    let s2 = Stack::start_with_keys(Some(&s0), &previous).await;
    let s3 = Stack::start_with_keys(Some(&s0), &b).await;
    let steps = [&s0, &s1, &s2, &s3];
    let tenant = s0.tenant_with_demo_hierarchy().await;
    let one_step_apart = [(0, 1), (1, 0), (1, 2), (2, 1), (2, 3), (3, 2)];

    // (issued at, tried at, activates)
    let codes = one_step_apart
        .iter()
        .map(|&(issued, tried)| (issued, tried, true))
        .chain([(1, 3, true), (0, 2, false), (3, 1, false)]);
    for (issued, tried, activates) in codes {
        let email = format!("code-{issued}-{tried}@example.com");
        let id = steps[issued].registered(&tenant, &email).await;
        let code = steps[issued].code_for(&id);
        let reply = steps[tried].activate(&tenant, &id, &email, &code).await;
        let what = format!("issued at step {issued}, tried at {tried}: {reply}");
        if activates {
            assert_eq!(reply.status, 200, "{what}");
            assert_eq!(
                reply.body["data"]["activationStatus"], "ACTIVATED",
                "{what}"
            );
        } else {
            assert_eq!(reply.status, 400, "{what}");
            assert_eq!(reply.body["data"]["error"], "INVALID_CODE", "{what}");
        }
    }

    // Two keys store a code under four keys: the customer item grows by the three maps' two
    // more entries (README → Operating gives the figure).
    let size = async |stack: &Stack, email: &str| {
        let id = stack.registered(&tenant, email).await;
        support::item_size(&stack.customer_raw(&tenant, &id).await)
    };
    let (one_key, two_keys) = (
        size(&s0, "size-0@example.com").await,
        size(&s1, "size-1@example.com").await,
    );
    eprintln!("customer item: {one_key} B under one key, {two_keys} B under two");
    assert!(
        (400..=440).contains(&(two_keys - one_key)),
        "{one_key} → {two_keys}"
    );

    // A resend at one step (a new code, under its keys) activates through the step before.
    let email = "resend-2-1@example.com";
    let id = s1.registered(&tenant, email).await;
    s2.advance(61);
    let resent = s2.resend(&tenant, &id, email).await;
    assert_eq!(resent.status, 202, "{resent}");
    let reply = s1.activate(&tenant, &id, email, &s2.code_for(&id)).await;
    assert_eq!(reply.status, 200, "resent at step 2, tried at 1: {reply}");

    // (written at, retried at, replayed)
    let records = one_step_apart
        .iter()
        .map(|&(written, retried)| (written, retried, true))
        .chain([(0, 2, true), (1, 3, false)]);
    for (written, retried, replayed) in records {
        let key = format!("rotation-{written}-{retried}");
        let body = contract_body(&tenant, &format!("replay-{written}-{retried}@example.com"));
        let first = steps[written].register_with_key(&tenant, &key, &body).await;
        assert_eq!(first.status, 201, "{first}");
        let again = steps[retried].register_with_key(&tenant, &key, &body).await;
        let what = format!("written at step {written}, retried at {retried}: {again}");
        if replayed {
            assert_eq!(again.status, 201, "{what}");
            assert_eq!(again.headers.get("idempotent-replayed").unwrap(), "true");
            assert_eq!(again.body, first.body, "{what}");
        } else {
            assert_eq!(again.status, 422, "{what}");
            assert_eq!(
                again.body["data"]["error"], "IDEMPOTENCY_KEY_REUSED",
                "{what}"
            );
        }
    }
}

/// The release's tombstone against moto, put by put, as puts can arrive late: a put of a
/// claim started before a release is refused (that claim's own, still on its way, and a twin
/// request's, which met the key held and whose own release therefore wrote nothing); a claim
/// started after it takes the key. Stamped with the released claim's start (as on
/// 2026-11-27 for a while), the twin's put took it, and the key was locked for 60 s.
#[tokio::test]
async fn a_released_key_refuses_every_claim_started_before_the_release() {
    use shared::store::{ClaimOutcome, IdempotencyClaim, IdempotencyStore};
    let stack = Stack::start().await;
    let t0 = chrono::DateTime::parse_from_rfc3339("2026-11-27T10:00:00Z")
        .unwrap()
        .to_utc();
    let at = |ms: i64| t0 + chrono::Duration::milliseconds(ms);
    let claim = |token: &str, start_ms: i64| IdempotencyClaim {
        tenant: shared::domain::TenantId::parse("t-released-key").unwrap(),
        key: "released-key".into(),
        body_hash: shared::store::BodyHash::single("same body"),
        token: token.into(),
        now: at(start_ms),
        expires_at: at(start_ms) + chrono::Duration::hours(24),
        lock_expires_at: at(start_ms) + chrono::Duration::seconds(60),
    };
    let store = &stack.store;
    let (first, twin) = (claim("first", 0), claim("twin", 900));
    assert_eq!(store.claim(&first).await.unwrap(), ClaimOutcome::Claimed);
    // The twin's put is on its way; the twin gives up at 8 s, finding the key held.
    store.release(&twin, at(8_000)).await.unwrap();
    assert_eq!(
        store.claim(&claim("during", 8_500)).await.unwrap(),
        ClaimOutcome::InProgress,
        "the first request still holds the key"
    );
    // The first request fails and releases at 9 s; then both late puts arrive.
    store.release(&first, at(9_000)).await.unwrap();
    for late in [&twin, &first] {
        assert_eq!(
            store.claim(late).await.unwrap(),
            ClaimOutcome::InProgress,
            "a put of {} (started before the release) arrives late",
            late.token
        );
    }
    let retry = claim("retry", 9_500);
    assert_eq!(store.claim(&retry).await.unwrap(), ClaimOutcome::Claimed);
    assert_eq!(
        store
            .recorded(&retry.tenant, &retry.key, &retry.body_hash, retry.now)
            .await
            .unwrap(),
        Some(ClaimOutcome::InProgress),
        "the retry's claim is live"
    );
    // Released in turn, it is taken by a claim started after, even in the same millisecond.
    store.release(&retry, at(9_800)).await.unwrap();
    assert_eq!(
        store
            .recorded(&retry.tenant, &retry.key, &retry.body_hash, at(9_900))
            .await
            .unwrap(),
        None,
        "a released key has no record to replay"
    );
    assert_eq!(
        store.claim(&claim("same ms", 9_800)).await.unwrap(),
        ClaimOutcome::Claimed
    );
}

#[tokio::test]
async fn a_request_rejected_before_writing_leaves_no_idempotency_record() {
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let mut body = contract_body(&tenant, "invalid@example.com");
    body["matchingPassword"] = json!("Mismatch123!!x");
    let reply = stack.register_with_key(&tenant, "key-3", &body).await;
    assert_eq!(reply.status, 400);
    assert_eq!(stack.items_of(&tenant).await.len(), 0);
    let fixed = stack
        .register_with_key(
            &tenant,
            "key-3",
            &contract_body(&tenant, "invalid@example.com"),
        )
        .await;
    assert_eq!(fixed.status, 201, "the key is still free: {}", fixed);
}

#[tokio::test]
async fn concurrent_requests_with_one_key_register_once() {
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let body = contract_body(&tenant, "same-key@example.com");
    let attempts = (0..6).map(|_| stack.register_with_key(&tenant, "key-4", &body));
    let replies = futures::future::join_all(attempts).await;
    let original = replies
        .iter()
        .filter(|r| r.status == 201 && r.headers.get("idempotent-replayed").is_none())
        .count();
    assert_eq!(
        original,
        1,
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    for reply in &replies {
        match reply.status {
            201 => {}
            409 => assert_eq!(reply.body["data"]["error"], "REQUEST_IN_PROGRESS"),
            other => panic!("unexpected {other}: {}", reply),
        }
    }
    assert_eq!(
        stack
            .items_of(&tenant)
            .await
            .iter()
            .filter(|i| i["SK"] == "CUSTOMER")
            .count(),
        1
    );
}

/// §3.4 step 6: an e-mail that cannot be sent does not undo the registration, and says so,
/// in the answer and in every replay of a keyed one; the code can then be sent again.
#[tokio::test]
async fn a_failed_send_keeps_the_registration_and_replays_say_failed() {
    let stack = Stack::start_with_failing_delivery().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let plain = stack
        .register(&tenant, &contract_body(&tenant, "unsent@example.com"))
        .await;
    assert_eq!(plain.status, 201, "{}", plain);
    assert_eq!(plain.body["data"]["activationCodeDelivery"], "FAILED");

    let body = contract_body(&tenant, "unsent-keyed@example.com");
    let keyed = stack.register_with_key(&tenant, "unsent", &body).await;
    assert_eq!(keyed.status, 201, "{}", keyed);
    assert_eq!(keyed.body["data"]["activationCodeDelivery"], "FAILED");
    let replay = stack.register_with_key(&tenant, "unsent", &body).await;
    assert_eq!(replay.headers.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(replay.body, keyed.body, "the replay says FAILED too");

    let items = stack.items_of(&tenant).await;
    for reply in [&plain, &keyed] {
        let id = reply.body["data"]["id"].as_str().unwrap();
        let customer = stack.customer_item(&tenant, id).await.expect("kept");
        assert_eq!(customer["customerStatus"], "CS_REGISTRATION_COMPLETED");
    }
    assert_eq!(items.iter().filter(|i| i["SK"] == "EMAIL").count(), 2);

    // Resend is the way out (and fails here too, saying so).
    stack.advance(61);
    let id = keyed.body["data"]["id"].as_str().unwrap();
    let resent = stack.resend(&tenant, id, "unsent-keyed@example.com").await;
    assert_eq!(resent.status, 202, "{}", resent);
    assert_eq!(resent.body["data"]["activationCodeDelivery"], "FAILED");
}

/// §3.6: a key is the tenant's own. The same key in another tenant is another request: it
/// registers there, and neither answer is a replay of the other.
#[tokio::test]
async fn the_same_key_in_two_tenants_is_two_requests() {
    let stack = Stack::start().await;
    let first = stack.tenant_with_demo_hierarchy().await;
    let second = stack.tenant_with_demo_hierarchy().await;
    let mut ids = Vec::new();
    for tenant in [&first, &second] {
        let body = contract_body(tenant, "one-key@example.com");
        let reply = stack.register_with_key(tenant, "shared-key", &body).await;
        assert_eq!(reply.status, 201, "{tenant}: {}", reply);
        assert!(
            reply.headers.get("idempotent-replayed").is_none(),
            "{tenant}"
        );
        ids.push(reply.body["data"]["id"].as_str().unwrap().to_owned());
        let items = stack.items_of(tenant).await;
        assert_eq!(items.iter().filter(|i| i["SK"] == "CUSTOMER").count(), 1);
        assert_eq!(items.iter().filter(|i| i["SK"] == "IDEMPOTENCY").count(), 1);
    }
    assert_ne!(ids[0], ids[1]);
    assert_eq!(stack.mail().len(), 2);
}

/// §3.5: the activation code and its keys leave the service only by e-mail: no answer of
/// registration, resend or activation holds them.
#[tokio::test]
async fn no_answer_holds_an_activation_code_or_its_keys() {
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let email = "code-stays-secret@example.com";
    let registered = stack
        .register(&tenant, &contract_body(&tenant, email))
        .await;
    assert_eq!(registered.status, 201, "{}", registered);
    let id = registered.body["data"]["id"].as_str().unwrap().to_owned();
    let first = stack.code_for(&id);
    let wrong = support::wrong_codes(&first, 1).remove(0);
    let refused = stack.activate(&tenant, &id, email, &wrong).await;
    stack.advance(61);
    let resent = stack.resend(&tenant, &id, email).await;
    assert_eq!(resent.status, 202, "{}", resent);
    let second = stack.code_for(&id);
    let activated = stack.activate(&tenant, &id, email, &second).await;
    assert_eq!(activated.status, 200, "{}", activated);
    let keys: Vec<String> = stack.customer_raw(&tenant, &id).await["codeKeys"]
        .as_m()
        .unwrap()
        .values()
        .flat_map(|by_key| by_key.as_m().unwrap().keys().cloned().collect::<Vec<_>>())
        .collect();
    assert!(!keys.is_empty());
    for reply in [&registered, &refused, &resent, &activated] {
        let text = reply.body.to_string();
        for secret in [&first, &second, &wrong].into_iter().chain(&keys) {
            assert!(!text.contains(secret.as_str()), "{text}");
        }
        assert!(
            !text.contains("codeKeys") && !text.contains("codeHash"),
            "{text}"
        );
    }
}

/// A claim whose request is still running (its lock not yet expired) answers 409
/// `REQUEST_IN_PROGRESS`; once the lock has expired, the claim of a request that died before
/// writing anything is taken over, and the request runs once.
#[tokio::test]
async fn a_held_key_answers_409_until_its_lock_expires_then_is_taken_over() {
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let body = contract_body(&tenant, "held-key@example.com");
    let first = stack.register_with_key(&tenant, "held", &body).await;
    assert_eq!(first.status, 201, "{}", first);
    // Back to the state of a request that claimed the key and died before its transaction:
    // its claim (same body) held for another minute, no customer, no e-mail marker.
    let pk = format!("TENANT#{tenant}#IDEMPOTENCY#held");
    let mut claim = stack.raw_item(pk, "IDEMPOTENCY").await.unwrap();
    for item in stack.items_of(&tenant).await {
        if item["SK"] != "IDEMPOTENCY" {
            stack
                .client
                .delete_item()
                .table_name(&stack.table)
                .key("PK", AttributeValue::S(item["PK"].as_str().unwrap().into()))
                .key("SK", AttributeValue::S(item["SK"].as_str().unwrap().into()))
                .send()
                .await
                .unwrap();
        }
    }
    claim.retain(|name, _| !name.starts_with("response"));
    let now = stack.clock_now().timestamp();
    claim.insert("status".into(), AttributeValue::S("IN_PROGRESS".into()));
    claim.insert(
        "token".into(),
        AttributeValue::S("a-request-that-died".into()),
    );
    claim.insert(
        "lockExpiresAt".into(),
        AttributeValue::N((now + 60).to_string()),
    );
    stack.put_raw(claim).await;

    let held = stack.register_with_key(&tenant, "held", &body).await;
    assert_eq!(held.status, 409, "{}", held);
    assert_eq!(held.body["data"]["error"], "REQUEST_IN_PROGRESS");
    assert!(held.headers.get("idempotent-replayed").is_none());
    stack.advance(59);
    let still = stack.register_with_key(&tenant, "held", &body).await;
    assert_eq!(
        still.status, 409,
        "held until its lock expires: {}",
        still.body
    );
    assert!(
        stack
            .items_of(&tenant)
            .await
            .iter()
            .all(|i| i["SK"] == "IDEMPOTENCY"),
        "nothing written while the key is held"
    );

    stack.advance(1);
    let taken_over = stack.register_with_key(&tenant, "held", &body).await;
    assert_eq!(taken_over.status, 201, "{}", taken_over);
    assert!(taken_over.headers.get("idempotent-replayed").is_none());
    let replay = stack.register_with_key(&tenant, "held", &body).await;
    assert_eq!(replay.headers.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(replay.body, taken_over.body);
    let items = stack.items_of(&tenant).await;
    assert_eq!(items.iter().filter(|i| i["SK"] == "CUSTOMER").count(), 1);
    let record = items.iter().find(|i| i["SK"] == "IDEMPOTENCY").unwrap();
    assert_eq!(record["status"], "COMPLETED");
    assert_ne!(record["token"], "a-request-that-died");
}

#[tokio::test]
async fn a_conflict_is_replayed_and_an_expired_record_runs_the_request_again() {
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let body = contract_body(&tenant, "taken@example.com");
    assert_eq!(stack.register(&tenant, &body).await.status, 201);
    let conflict = stack.register_with_key(&tenant, "key-5", &body).await;
    assert_eq!(conflict.status, 409);
    let replayed = stack.register_with_key(&tenant, "key-5", &body).await;
    assert_eq!(replayed.status, 409);
    assert_eq!(replayed.headers.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(replayed.body["data"]["error"], "EMAIL_ALREADY_EXISTS");

    // A day later the record has expired (whether or not TTL has deleted it yet).
    stack.advance(86_400);
    let fresh = stack.register_with_key(&tenant, "key-5", &body).await;
    assert_eq!(fresh.status, 409);
    assert!(
        fresh.headers.get("idempotent-replayed").is_none(),
        "run again, not replayed"
    );
}

#[tokio::test]
async fn a_retry_gets_its_original_answer_after_the_hierarchy_changed() {
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let body = contract_body(&tenant, "replay-after-change@example.com");
    let first = stack.register_with_key(&tenant, "key-6", &body).await;
    assert_eq!(first.status, 201, "{}", first);

    // The tenant drops the request's category; a fresh function (nothing cached) sees that.
    let mut hierarchy = demo_hierarchy(&tenant);
    hierarchy.categories.remove("MEDIUM_RISK_INDIVIDUAL");
    hierarchy.default_category_id = Some("LOW_RISK_INDIVIDUAL".into());
    stack.put_hierarchy(&hierarchy).await;
    let fresh = Stack::start_beside(&stack, None, local_gateway::LAMBDA_TIMEOUT).await;
    let unkeyed = fresh
        .register(&tenant, &contract_body(&tenant, "other@example.com"))
        .await;
    assert_eq!(unkeyed.status, 400);
    assert_eq!(unkeyed.body["data"]["error"], "CATEGORY_NOT_FOUND");

    let again = fresh.register_with_key(&tenant, "key-6", &body).await;
    assert_eq!(again.status, 201, "{}", again);
    assert_eq!(again.headers.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(again.body, first.body, "the original body again");
    assert_eq!(again.headers.get("location"), first.headers.get("location"));

    // Another key is refused as any request is; the same key with another body is 422.
    let other_key = fresh.register_with_key(&tenant, "key-7", &body).await;
    assert_eq!(other_key.status, 400);
    assert_eq!(other_key.body["data"]["error"], "CATEGORY_NOT_FOUND");
    let other_body = contract_body(&tenant, "someone-else@example.com");
    let reused = fresh.register_with_key(&tenant, "key-6", &other_body).await;
    assert_eq!(reused.status, 422);
    assert_eq!(reused.body["data"]["error"], "IDEMPOTENCY_KEY_REUSED");
    // A day later the record has expired (whether or not TTL has deleted it): no replay.
    fresh.advance(86_400);
    let late = fresh.register_with_key(&tenant, "key-6", &body).await;
    assert_eq!(late.status, 400, "{}", late);
    assert!(late.headers.get("idempotent-replayed").is_none());
    let items = stack.items_of(&tenant).await;
    assert_eq!(items.iter().filter(|i| i["SK"] == "CUSTOMER").count(), 1);
    assert_eq!(
        items.iter().filter(|i| i["SK"] == "IDEMPOTENCY").count(),
        1,
        "the refusals left no record"
    );
    assert_eq!(fresh.mail().len(), 0, "nothing sent by the replay");
}

/// moto never refuses a call for lack of permission, so every stack checks, when dropped, the
/// calls its functions made against their policies in `template.yaml`. This test shows that
/// check sees each kind of call the three functions make, and that it bites: the registration
/// policy without its Idempotency-Key statement (as it was deployed before) refuses the keyed
/// registration's calls.
#[tokio::test]
async fn every_kind_of_dynamodb_call_the_functions_make_is_checked_against_their_policies() {
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    assert_eq!(
        stack
            .get(&support::hierarchy_path(&tenant), &tenant, None)
            .await
            .status,
        200
    );
    let email = "policy@example.com";
    let body = contract_body(&tenant, email);
    let first = stack.register_with_key(&tenant, "policy-key", &body).await;
    assert_eq!(first.status, 201, "{}", first);
    let replay = stack.register_with_key(&tenant, "policy-key", &body).await;
    assert_eq!(replay.status, 201, "{}", replay);
    // Refused before writing: the key's record is looked up (GetItem); another body is 422.
    let mut invalid = body.clone();
    invalid["matchingPassword"] = json!("Mismatch123!!x");
    assert_eq!(
        stack
            .register_with_key(&tenant, "policy-key", &invalid)
            .await
            .status,
        422
    );
    // A keyed conflict is recorded for replay outside the transaction (UpdateItem).
    let conflict = stack
        .register_with_key(&tenant, "policy-key-2", &body)
        .await;
    assert_eq!(conflict.status, 409, "{}", conflict);
    let customer = first.body["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        stack
            .activate(&tenant, &customer, email, "00000000")
            .await
            .status,
        400
    );
    stack.advance(61);
    assert_eq!(stack.resend(&tenant, &customer, email).await.status, 202);
    let code = stack.code_for(&customer);
    assert_eq!(
        stack
            .activate(&tenant, &customer, email, &code)
            .await
            .status,
        200
    );

    let kind = |key: &str| {
        ["CUSTOMER", "EMAIL", "IDEMPOTENCY", "CATEGORIZATION"]
            .into_iter()
            .find(|k| key.contains(&format!("#{k}")))
            .unwrap_or("?")
    };
    let seen: HashSet<String> = stack
        .dynamodb_actions()
        .into_iter()
        .map(|(function, action, key)| format!("{function} {action} {}", kind(&key)))
        .collect();
    for expected in [
        "CategorizationFunction dynamodb:Query CATEGORIZATION",
        "RegistrationFunction dynamodb:Query CATEGORIZATION",
        "RegistrationFunction dynamodb:PutItem CUSTOMER",
        "RegistrationFunction dynamodb:PutItem EMAIL",
        "RegistrationFunction dynamodb:PutItem IDEMPOTENCY",
        "RegistrationFunction dynamodb:UpdateItem IDEMPOTENCY",
        "RegistrationFunction dynamodb:GetItem IDEMPOTENCY",
        "ActivationFunction dynamodb:UpdateItem CUSTOMER",
        "ActivationFunction dynamodb:GetItem CUSTOMER",
    ] {
        assert!(seen.contains(expected), "{expected} not seen in {seen:#?}");
    }
    assert_eq!(stack.refused_by_policy(), Vec::<String>::new());

    let template = include_str!("../../../template.yaml");
    let statement = "            - Effect: Allow\n              Action: [dynamodb:PutItem, dynamodb:GetItem, dynamodb:UpdateItem]\n              Resource: !GetAtt CustomersTable.Arn\n              Condition:\n                ForAllValues:StringLike:\n                  dynamodb:LeadingKeys: [\"TENANT#*#IDEMPOTENCY#*\"]\n";
    assert!(
        template.contains(statement),
        "the idempotency statement moved"
    );
    let before =
        admin::template_checks::Policies::from_template(&template.replacen(statement, "", 1))
            .unwrap();
    let refused_before = stack
        .dynamodb_actions()
        .into_iter()
        .filter(|(function, action, key)| !before.allows(function, action, key))
        .count();
    assert!(
        refused_before >= 4,
        "{refused_before} calls refused without the statement"
    );
}

/// A Query is not isolated from the transaction that replaces a hierarchy, so a reader can
/// meet items of two versions. Such a read is repeated, and if it stays mixed the request is
/// 503 (nothing cached), never served a hierarchy that was never written.
#[tokio::test]
async fn a_hierarchy_met_half_replaced_is_not_served_or_cached() {
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    // A feature item of a replacement that is (forever, here) half-way through.
    let mut newer = stack
        .hierarchy_item(&tenant, "FEATURE#MEDIUM_RISK_PROFILE")
        .await;
    assert_eq!(newer["hierarchyVersion"], AttributeValue::N("1".into()));
    newer.insert("hierarchyVersion".into(), AttributeValue::N("2".into()));
    stack.put_raw(newer).await;

    let lookup = stack
        .get(&support::hierarchy_path(&tenant), &tenant, None)
        .await;
    assert_eq!(lookup.status, 503, "{}", lookup);
    assert_eq!(lookup.body["data"]["error"], "SERVICE_UNAVAILABLE");
    let registration = stack
        .register(&tenant, &contract_body(&tenant, "mixed@example.com"))
        .await;
    assert_eq!(registration.status, 503, "{}", registration);
    assert!(stack.items_of(&tenant).await.is_empty());

    // The replacement completes (here: the hierarchy is put again): served, as written.
    stack.put_hierarchy(&demo_hierarchy(&tenant)).await;
    let lookup = stack
        .get(&support::hierarchy_path(&tenant), &tenant, None)
        .await;
    assert_eq!(lookup.status, 200, "{}", lookup);
}

/// A put deletes the items it replaces only after its transaction (which then takes up to 99
/// items whatever the old hierarchy held), and a Query can miss an item a concurrent put is
/// adding: an item of an earlier version may stay behind for a while. Readers skip it (before:
/// 503 for every lookup and registration of the tenant until the next put), and the next put
/// deletes it.
#[tokio::test]
async fn leftovers_of_earlier_hierarchies_are_skipped_and_then_deleted() {
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    stack.put_hierarchy(&demo_hierarchy(&tenant)).await;
    let demo = stack.hierarchy_keys(&tenant).await;
    // A category of version 1 (the header is at 2) and a feature stamped with no version.
    let mut ghost = stack
        .hierarchy_item(&tenant, "CATEGORY#LOW_RISK_INDIVIDUAL")
        .await;
    assert_eq!(ghost["hierarchyVersion"], AttributeValue::N("2".into()));
    ghost.insert("SK".into(), AttributeValue::S("CATEGORY#GHOST".into()));
    support::set_json_field(&mut ghost, "categoryId", "GHOST");
    support::set_json_field(&mut ghost, "databaseId", "ghost-id");
    ghost.insert("hierarchyVersion".into(), AttributeValue::N("1".into()));
    let mut legacy = ghost.clone();
    legacy.insert("SK".into(), AttributeValue::S("CATEGORY#LEGACY".into()));
    support::set_json_field(&mut legacy, "categoryId", "LEGACY");
    legacy.remove("hierarchyVersion");
    stack.put_raw(ghost).await;
    stack.put_raw(legacy).await;
    assert_eq!(stack.hierarchy_keys(&tenant).await.len(), demo.len() + 2);

    let lookup = stack
        .get(&support::hierarchy_path(&tenant), &tenant, None)
        .await;
    assert_eq!(lookup.status, 200, "{}", lookup);
    let categories = lookup.body["data"]["categories"].as_object().unwrap();
    assert_eq!(categories.len(), 3, "{categories:?}");
    assert!(!categories.contains_key("GHOST") && !categories.contains_key("LEGACY"));
    let registration = stack
        .register(&tenant, &contract_body(&tenant, "leftover@example.com"))
        .await;
    assert_eq!(registration.status, 201, "{}", registration);

    // The next put deletes both.
    stack.put_hierarchy(&demo_hierarchy(&tenant)).await;
    assert_eq!(stack.hierarchy_keys(&tenant).await, demo);

    // A replacement renaming 60 features: 61 puts in the transaction, then 60 deletes (one
    // transaction of 121 actions was refused before).
    let renamed = |prefix: &str| {
        let mut h = demo_hierarchy(&tenant);
        let template = h.features["TRANSACTION_LIMITS"].clone();
        for i in 0..60 {
            let mut f = template.clone();
            f.feature_code = format!("{prefix}{i}");
            f.database_id = format!("{prefix}-id-{i}");
            h.features.insert(f.feature_code.clone(), f);
        }
        h
    };
    stack.put_hierarchy(&renamed("OLD")).await;
    stack.put_hierarchy(&renamed("NEW")).await;
    let sks = stack.hierarchy_keys(&tenant).await;
    assert_eq!(sks.len(), demo.len() + 60, "{sks:?}");
    assert!(
        sks.iter().all(|sk| !sk.starts_with("FEATURE#OLD")),
        "{sks:?}"
    );

    // The header deleted by hand, an item of a high version left: the next put numbers its
    // version above every stamp, so the item is a leftover (before: served 503 until the
    // version climbed past it).
    let mut high = stack.hierarchy_item(&tenant, "FEATURE#NEW0").await;
    high.insert("SK".into(), AttributeValue::S("FEATURE#HIGH".into()));
    support::set_json_field(&mut high, "featureCode", "HIGH");
    high.insert("hierarchyVersion".into(), AttributeValue::N("50".into()));
    stack.put_raw(high).await;
    stack
        .client
        .delete_item()
        .table_name(&stack.table)
        .key(
            "PK",
            AttributeValue::S(format!("TENANT#{tenant}#CATEGORIZATION")),
        )
        .key("SK", AttributeValue::S("TENANT".into()))
        .send()
        .await
        .unwrap();
    stack.put_hierarchy(&demo_hierarchy(&tenant)).await;
    assert_eq!(stack.hierarchy_keys(&tenant).await, demo);
    let lookup = stack
        .get(&support::hierarchy_path(&tenant), &tenant, None)
        .await;
    assert_eq!(lookup.status, 200, "{}", lookup);
}

/// Browsers send CORS preflights without a token: `OPTIONS` on any path is answered 204 with
/// no data (API Gateway adds the CORS headers), while every other method still needs a token.
#[tokio::test]
async fn cors_preflights_need_no_token_and_get_no_data() {
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    for path in [
        support::REGISTRATION.to_owned(),
        support::hierarchy_path(&tenant),
        format!(
            "/api/v2.1/customer/individual/{}/activation",
            uuid::Uuid::new_v4()
        ),
        "/no/such/route".to_owned(),
    ] {
        let response = stack
            .http
            .request(reqwest::Method::OPTIONS, format!("{}{path}", stack.base))
            .header("origin", "https://app.example.com")
            .header("access-control-request-method", "POST")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204, "{path}");
        assert!(response.headers().contains_key("x-request-id"), "{path}");
        assert!(
            response.bytes().await.unwrap().is_empty(),
            "{path}: no data"
        );
        let unauthenticated = stack
            .http
            .get(format!("{}{path}", stack.base))
            .send()
            .await
            .unwrap();
        assert_eq!(unauthenticated.status(), 401, "{path}");
    }
}

/// §4.3: in AWS the code leaves by SES v2 `SendEmail` (moto here). From an identity SES has
/// not verified, the send is refused, and the failure names SES's error code, never the
/// address or the code; from a verified one, SES accepts it.
#[tokio::test]
async fn the_ses_adapter_sends_the_code_from_a_verified_identity() {
    use shared::activation::delivery::{ActivationMessage, sender};
    use shared::activation::settings::Delivery;
    let moto = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").expect("run with make test");
    let sdk = shared::store::dynamodb::aws_config_from_env()
        .await
        .into_builder()
        .endpoint_url(&moto)
        .build();
    let from = format!("onboarding-{}@example.com", uuid::Uuid::new_v4().simple());
    let to = format!("ses-{}@example.com", uuid::Uuid::new_v4().simple());
    let ses = sender(
        &Delivery::Ses {
            from: from.clone(),
            subject: "Your activation code".into(),
        },
        Some(&sdk),
    );
    let expires_at = chrono::DateTime::parse_from_rfc3339("2026-11-28T09:30:00Z")
        .unwrap()
        .to_utc();
    let message = ActivationMessage {
        to: to.clone(),
        tenant: shared::domain::TenantId::parse("t-ses").unwrap(),
        customer_id: uuid::Uuid::new_v4().to_string(),
        code: shared::activation::code::ActivationCode::parse("24681357").unwrap(),
        expires_at,
    };

    let refused = ses.send(&message).await.expect_err("not verified");
    let why = format!("{refused:#}");
    assert!(why.contains("MessageRejected"), "{why}");
    for secret in [&to, &from, "24681357"] {
        assert!(!why.contains(secret), "{why}");
    }

    aws_sdk_sesv2::Client::new(&sdk)
        .create_email_identity()
        .email_identity(&from)
        .send()
        .await
        .unwrap();
    // Accepted now (what it says is `SesSender`'s unit test: moto keeps it out of reach).
    ses.send(&message).await.unwrap();
}

/// In AWS the code-hash key is read from Secrets Manager at cold start (moto here), so it is
/// not in the functions' configuration. A secret that is missing or too short stops the cold
/// start with the variable and the service's error code, never a value (one out of reach for
/// the moment does not: `shared`'s unit tests).
#[tokio::test]
async fn the_activation_key_is_read_from_secrets_manager() {
    use secrecy::ExposeSecret;
    use shared::activation::settings::{SettingsError, secret_from_secrets_manager};
    let moto = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").expect("run with make test");
    let sdk = shared::store::dynamodb::aws_config_from_env().await;
    let client = aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::config::Builder::from(&sdk)
            .endpoint_url(moto)
            .build(),
    );
    let key = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let created = client
        .create_secret()
        .name(format!("e2e-activation-{}", uuid::Uuid::new_v4().simple()))
        .secret_string(&key)
        .send()
        .await
        .unwrap();
    let arn = created.arn().unwrap();
    let read = secret_from_secrets_manager(&client, arn).await.unwrap();
    assert_eq!(read.expose_secret(), key);
    // As a function's cold start reads it: the ARN wins over any ACTIVATION_CODE_SECRET.
    let settings =
        shared::activation::settings::ActivationSettings::load_with(&client, |name| match name {
            "ACTIVATION_CODE_SECRET_ARN" => Some(arn.to_owned()),
            "ACTIVATION_CODE_SECRET" => Some("not-this-one-".repeat(4)),
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!(settings.keys.current().expose_secret(), key);
    let too_short = client
        .create_secret()
        .name(format!("e2e-short-{}", uuid::Uuid::new_v4().simple()))
        .secret_string("short")
        .send()
        .await
        .unwrap();
    let refused = shared::activation::settings::ActivationSettings::load_with(&client, |name| {
        (name == "ACTIVATION_CODE_SECRET_ARN").then(|| too_short.arn().unwrap().to_owned())
    })
    .await
    .unwrap_err();
    // A configuration problem, which fails the cold start (no request could succeed).
    assert!(matches!(refused, SettingsError::Invalid(_)), "{refused:?}");
    assert_eq!(refused.config().variable, "ACTIVATION_CODE_SECRET");

    let missing = secret_from_secrets_manager(
        &client,
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:no-such-secret",
    )
    .await
    .unwrap_err();
    assert!(matches!(missing, SettingsError::Invalid(_)), "{missing:?}");
    let missing = missing.config();
    assert_eq!(missing.variable, "ACTIVATION_CODE_SECRET_ARN");
    assert!(
        missing.problem.contains("ResourceNotFoundException"),
        "{}",
        missing.problem
    );
}

/// §1.3: `errors[]` lists every field problem, not just the first. Activation and resend read
/// their bodies as registration does: every value of the wrong type is reported, with what
/// the rules find in the rest, and none again as missing (before, the first wrong type
/// ended the reading).
#[tokio::test]
async fn activation_bodies_report_every_field_problem_at_once() {
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let id = stack.registered(&tenant, "typed@example.com").await;
    let token = stack.token(&tenant, None);
    let path = format!("/api/v2.1/customer/individual/{id}/activation");
    let fields = |reply: &support::Reply| -> Vec<(String, String)> {
        reply.body["data"]["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("{reply}"))
            .iter()
            .map(|e| {
                (
                    e["field"].as_str().unwrap().to_owned(),
                    e["message"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let cases: [(&str, &str, &[&str]); 4] = [
        (&path, r#"{"userId": 5, "code": 7}"#, &["userId", "code"]),
        (
            &path,
            r#"{"userId": [1], "code": "12"}"#,
            &["userId", "code"],
        ),
        (&path, r#"{"code": false}"#, &["code", "userId"]),
        (
            &format!("{path}/code"),
            r#"{"userId": {"a": 1}}"#,
            &["userId"],
        ),
    ];
    for (path, body, expected) in cases {
        let reply = stack.post_raw(path, &token, &tenant, body).await;
        assert_eq!(reply.status, 400, "{body}: {reply}");
        assert_eq!(reply.body["data"]["error"], "VALIDATION_FAILED", "{body}");
        let found = fields(&reply);
        let named: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(named, expected, "{body}: {found:?}");
    }
    let item = stack.customer_item(&tenant, &id).await.unwrap();
    assert_eq!(
        item["codeAttempts"], 0,
        "no attempt counted for a refused body"
    );
}
