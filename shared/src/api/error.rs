//! The one API error type (CONVENTIONS §4): each variant knows its HTTP status and its stable
//! machine code (§6). Lower layers map into it once; nothing else picks a status.

use std::collections::BTreeMap;

use lambda_http::{Body, Response, http::StatusCode};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::envelope::json_response;

/// One problem with one field of the request: `field` is its JSON path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub code: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            code,
            message: message.into(),
        }
    }
}

/// Why categorization failed (§3.3 step 4): keys that could not be defaulted and rejected values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CategorizationProblems {
    pub missing_keys: Vec<String>,
    pub invalid_values: BTreeMap<String, String>,
}

impl CategorizationProblems {
    pub fn is_empty(&self) -> bool {
        self.missing_keys.is_empty() && self.invalid_values.is_empty()
    }
}

/// Every answer other than success. Expected failures carry what the client needs; unexpected
/// ones (`Internal`, `ServiceUnavailable`) carry nothing: their cause goes to the log only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("unauthorized")]
    Unauthorized,
    #[error("insufficient scope")]
    InsufficientScope { required: &'static str },
    #[error("tenant mismatch")]
    TenantMismatch,
    #[error("invalid tenant id")]
    InvalidTenantId,
    #[error("missing headers")]
    MissingHeaders(Vec<&'static str>),
    #[error("malformed JSON")]
    MalformedJson,
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("flat object not supported")]
    FlatObjectNotSupported,
    #[error("category required")]
    CategoryRequired,
    #[error("category not found")]
    CategoryNotFound,
    #[error("categorization invalid")]
    CategorizationInvalid(CategorizationProblems),
    #[error("invalid activation code")]
    InvalidCode { attempts_remaining: u32 },
    #[error("activation code expired")]
    CodeExpired,
    #[error("customer not found")]
    CustomerNotFound,
    #[error("categorization not found")]
    CategorizationNotFound,
    #[error("route not found")]
    RouteNotFound,
    #[error("method not allowed")]
    MethodNotAllowed { allowed: Vec<&'static str> },
    #[error("email already exists")]
    EmailAlreadyExists,
    #[error("already active")]
    AlreadyActive,
    #[error("request in progress")]
    RequestInProgress,
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("idempotency key reused")]
    IdempotencyKeyReused,
    #[error("too many attempts")]
    TooManyAttempts,
    #[error("resend limited")]
    ResendLimited { retry_after_seconds: u64 },
    #[error("service unavailable")]
    ServiceUnavailable { retry_after_seconds: u64 },
    #[error("internal error")]
    Internal,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        use ApiError::*;
        match self {
            Unauthorized => StatusCode::UNAUTHORIZED,
            InsufficientScope { .. } | TenantMismatch => StatusCode::FORBIDDEN,
            InvalidTenantId
            | MissingHeaders(_)
            | MalformedJson
            | Validation(_)
            | FlatObjectNotSupported
            | CategoryRequired
            | CategoryNotFound
            | CategorizationInvalid(_)
            | InvalidCode { .. }
            | CodeExpired => StatusCode::BAD_REQUEST,
            CustomerNotFound | CategorizationNotFound | RouteNotFound => StatusCode::NOT_FOUND,
            MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            EmailAlreadyExists | AlreadyActive | RequestInProgress => StatusCode::CONFLICT,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            TooManyAttempts | ResendLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ServiceUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine code of §6 (`data.error`).
    pub fn code(&self) -> &'static str {
        use ApiError::*;
        match self {
            Unauthorized => "UNAUTHORIZED",
            InsufficientScope { .. } => "INSUFFICIENT_SCOPE",
            TenantMismatch => "TENANT_MISMATCH",
            InvalidTenantId => "INVALID_TENANT_ID",
            MissingHeaders(_) => "MISSING_HEADERS",
            MalformedJson => "MALFORMED_JSON",
            Validation(_) => "VALIDATION_FAILED",
            FlatObjectNotSupported => "FLAT_OBJECT_NOT_SUPPORTED",
            CategoryRequired => "CATEGORY_REQUIRED",
            CategoryNotFound => "CATEGORY_NOT_FOUND",
            CategorizationInvalid(_) => "CATEGORIZATION_INVALID",
            InvalidCode { .. } => "INVALID_CODE",
            CodeExpired => "CODE_EXPIRED",
            CustomerNotFound => "CUSTOMER_NOT_FOUND",
            CategorizationNotFound => "CATEGORIZATION_NOT_FOUND",
            RouteNotFound => "ROUTE_NOT_FOUND",
            MethodNotAllowed { .. } => "METHOD_NOT_ALLOWED",
            EmailAlreadyExists => "EMAIL_ALREADY_EXISTS",
            AlreadyActive => "ALREADY_ACTIVE",
            RequestInProgress => "REQUEST_IN_PROGRESS",
            PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            TooManyAttempts => "TOO_MANY_ATTEMPTS",
            ResendLimited { .. } => "RESEND_LIMITED",
            ServiceUnavailable { .. } => "SERVICE_UNAVAILABLE",
            Internal => "INTERNAL_ERROR",
        }
    }

    fn message(&self) -> &'static str {
        use ApiError::*;
        match self {
            Unauthorized => "Authentication required",
            InsufficientScope { .. } => "The token lacks the scope this operation requires",
            TenantMismatch => "X-Tenant-ID does not match the tenant of the token",
            InvalidTenantId => "Tenant ids are 1-64 characters of A-Z, a-z, 0-9, '_' and '-'",
            MissingHeaders(_) => "Required headers are missing",
            MalformedJson => "The request body is not valid JSON",
            Validation(_) => "Request validation failed",
            FlatObjectNotSupported => {
                "Person fields must be sent in the individualCustomer.person.* hierarchy; \
                 a flat object is not supported"
            }
            CategoryRequired => "A customer category is required: the tenant has no default",
            CategoryNotFound => "The customer category does not exist for this tenant",
            CategorizationInvalid(_) => "The categorization parameters are invalid",
            InvalidCode { .. } => "The activation code is invalid",
            CodeExpired => "The activation code has expired; request a new one",
            CustomerNotFound => "Customer not found",
            CategorizationNotFound => "No categorization hierarchy exists for this tenant",
            RouteNotFound => "No such route",
            MethodNotAllowed { .. } => "Method not allowed on this route",
            EmailAlreadyExists => "A customer with this e-mail already exists",
            AlreadyActive => "The customer is already active",
            RequestInProgress => "A request with this Idempotency-Key is still in progress",
            PayloadTooLarge => "The request body exceeds 64 KiB",
            UnsupportedMediaType => "Content-Type must be application/json",
            IdempotencyKeyReused => "This Idempotency-Key was used with a different request body",
            TooManyAttempts => "Too many wrong attempts; request a new activation code",
            ResendLimited { .. } => "Activation codes can't be resent this often",
            ServiceUnavailable { .. } => "The service is temporarily unavailable; retry later",
            Internal => "Internal server error",
        }
    }

    fn data(&self) -> Value {
        let mut data = Map::new();
        data.insert("error".into(), Value::from(self.code()));
        match self {
            ApiError::Validation(errors) => {
                data.insert("errors".into(), json!(errors));
            }
            ApiError::MissingHeaders(names) => {
                data.insert("missingHeaders".into(), json!(names));
            }
            ApiError::InsufficientScope { required } => {
                data.insert("requiredScope".into(), json!(required));
            }
            ApiError::CategorizationInvalid(problems) => {
                data.insert("missingKeys".into(), json!(problems.missing_keys));
                data.insert("invalidValues".into(), json!(problems.invalid_values));
            }
            ApiError::InvalidCode { attempts_remaining } => {
                data.insert("attemptsRemaining".into(), json!(attempts_remaining));
            }
            ApiError::ResendLimited {
                retry_after_seconds,
            }
            | ApiError::ServiceUnavailable {
                retry_after_seconds,
            } => {
                data.insert("retryAfterSeconds".into(), json!(retry_after_seconds));
            }
            _ => {}
        }
        Value::Object(data)
    }

    /// The enveloped response for this error.
    pub fn into_response(self, request_id: &str) -> Response<Body> {
        let mut headers = Vec::new();
        match &self {
            ApiError::ResendLimited {
                retry_after_seconds,
            }
            | ApiError::ServiceUnavailable {
                retry_after_seconds,
            } => headers.push(("retry-after", retry_after_seconds.to_string())),
            ApiError::MethodNotAllowed { allowed } => headers.push(("allow", allowed.join(", "))),
            ApiError::Unauthorized => headers.push(("www-authenticate", "Bearer".to_owned())),
            _ => {}
        }
        json_response(
            self.status(),
            self.message(),
            None,
            self.data(),
            request_id,
            &headers,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_body_repeats_its_status_and_names_its_code() {
        let cases = [
            (ApiError::Unauthorized, 401, "UNAUTHORIZED"),
            (ApiError::TenantMismatch, 403, "TENANT_MISMATCH"),
            (
                ApiError::MissingHeaders(vec!["deviceId"]),
                400,
                "MISSING_HEADERS",
            ),
            (ApiError::EmailAlreadyExists, 409, "EMAIL_ALREADY_EXISTS"),
            (ApiError::PayloadTooLarge, 413, "PAYLOAD_TOO_LARGE"),
            (
                ApiError::UnsupportedMediaType,
                415,
                "UNSUPPORTED_MEDIA_TYPE",
            ),
            (
                ApiError::ServiceUnavailable {
                    retry_after_seconds: 2,
                },
                503,
                "SERVICE_UNAVAILABLE",
            ),
            (ApiError::Internal, 500, "INTERNAL_ERROR"),
        ];
        for (error, status, code) in cases {
            let response = error.into_response("req-1");
            assert_eq!(response.status().as_u16(), status);
            assert_eq!(response.headers()["x-request-id"], "req-1");
            assert_eq!(response.headers()["content-type"], "application/json");
            let body: Value = match response.body() {
                Body::Text(text) => serde_json::from_str(text).unwrap(),
                other => panic!("unexpected body {other:?}"),
            };
            assert_eq!(body["code"], status);
            assert_eq!(body["data"]["error"], code);
        }
    }

    #[test]
    fn throttling_answers_carry_retry_after() {
        let response = ApiError::ServiceUnavailable {
            retry_after_seconds: 3,
        }
        .into_response("r");
        assert_eq!(response.headers()["retry-after"], "3");
    }
}
