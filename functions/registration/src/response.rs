//! The 201 body of §3.5, built from the stored customer (never from the request, and never
//! with a secret in it: the customer record holds none).

use lambda_http::http::StatusCode;
use serde_json::{Value, json};
use shared::api::{body_text, json_response};
use shared::registration::{Customer, UserStatus, timestamp};

pub fn registered(customer: &Customer, redirect_url: &str, delivery: &str) -> Value {
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

const CREATED_MESSAGE: &str =
    "B2C individual account created successfully. Redirect to activate-account page";

/// The whole 201 body (envelope included), as sent and as kept for idempotent replays.
pub fn created_body(
    customer: &Customer,
    redirect_url: &str,
    delivery: &str,
    request_id: &str,
) -> String {
    body_text(&json_response(
        StatusCode::CREATED,
        CREATED_MESSAGE,
        Some(redirect_url),
        registered(customer, redirect_url, delivery),
        request_id,
        &[],
    ))
}
