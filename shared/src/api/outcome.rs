//! The end of every request: one JSON log line with ids, route, status, code and duration (no
//! personal data), and the mapping of unexpected storage failures to 503/500 whose cause goes
//! to the log only (§1.3: a 5xx never reveals internals).

use std::time::Instant;

use lambda_http::{Body, Response};

use super::ApiError;
use crate::store::StoreError;

/// Turns a handler's result into the response and logs the outcome.
pub fn finish(
    route: &'static str,
    request_id: &str,
    tenant: Option<&str>,
    started: Instant,
    result: Result<Response<Body>, ApiError>,
) -> Response<Body> {
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    let (response, code) = match result {
        Ok(response) => (response, "OK"),
        Err(error) => {
            let code = error.code();
            (error.into_response(request_id), code)
        }
    };
    let status = response.status().as_u16();
    let tenant_id = tenant.unwrap_or("-");
    record_metric(route, status, code);
    if status >= 500 {
        tracing::error!(
            request_id,
            tenant_id,
            route,
            status,
            outcome = code,
            duration_ms,
            "request failed"
        );
    } else {
        tracing::info!(
            request_id,
            tenant_id,
            route,
            status,
            outcome = code,
            duration_ms,
            "request completed"
        );
    }
    response
}

/// Maps a storage failure that the use case did not expect. The cause chain is logged here.
pub fn storage_failure(error: StoreError) -> ApiError {
    match error {
        StoreError::Unavailable(cause) => {
            tracing::warn!(error = %format!("{cause:#}"), "storage unavailable");
            ApiError::ServiceUnavailable {
                retry_after_seconds: 1,
            }
        }
        other => {
            let chain = match &other {
                StoreError::Unexpected(cause) => format!("{cause:#}"),
                plain => plain.to_string(),
            };
            tracing::error!(error = %chain, "unexpected storage error");
            ApiError::Internal
        }
    }
}

/// The business metrics of §issue "observability": registrations created/rejected by code,
/// activations succeeded/failed by code, resends; plus every route's outcome.
fn record_metric(route: &'static str, status: u16, code: &'static str) {
    let ok = status < 300;
    match (route, ok) {
        ("POST /registration", true) => metrics::counter!("RegistrationsCreated").increment(1),
        ("POST /registration", false) => {
            metrics::counter!("RegistrationsRejected", "Code" => code).increment(1)
        }
        ("POST /{customerId}/activation", true) => {
            metrics::counter!("ActivationsSucceeded").increment(1)
        }
        ("POST /{customerId}/activation", false) => {
            metrics::counter!("ActivationsFailed", "Code" => code).increment(1)
        }
        ("POST /{customerId}/activation/code", true) => {
            metrics::counter!("ActivationCodesResent").increment(1)
        }
        ("POST /{customerId}/activation/code", false) => {
            metrics::counter!("ResendsRefused", "Code" => code).increment(1)
        }
        (_, _) => metrics::counter!("Requests", "Code" => code).increment(1),
    }
}
