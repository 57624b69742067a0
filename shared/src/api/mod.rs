//! The HTTP edge shared by every function: the API error and envelope (§1.3), authentication
//! and tenancy (§1.1), client-context headers (§1.2) and request hygiene (§1.4).

pub mod auth;
pub mod body;
pub mod client_context;
pub mod envelope;
pub mod error;
pub mod idempotency;
pub mod outcome;
pub mod routes;

pub use envelope::{Envelope, body_text, json_response, raw_json_response};
pub use error::{ApiError, FieldError};

use lambda_http::{Request, RequestExt, request::RequestContext};

/// The gateway's request id (`requestContext.requestId`), else the Lambda invocation id, else a
/// fresh UUID: every response carries it as `X-Request-Id` and every log line of the request.
pub fn request_id(req: &Request) -> String {
    if let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref()
        && let Some(id) = ctx.request_id.as_deref().filter(|id| !id.is_empty())
    {
        return id.to_owned();
    }
    if let Some(ctx) = req.lambda_context_ref()
        && !ctx.request_id.is_empty()
    {
        return ctx.request_id.clone();
    }
    uuid::Uuid::new_v4().to_string()
}

/// A header's value, trimmed (names are case-insensitive). A value that is not valid UTF-8
/// reads as its lossy UTF-8 form, so it counts as present (and is length-checked) rather than
/// as missing.
pub fn header<'a>(req: &'a Request, name: &str) -> Option<std::borrow::Cow<'a, str>> {
    let value = req.headers().get(name)?;
    Some(match std::str::from_utf8(value.as_bytes()) {
        Ok(text) => std::borrow::Cow::Borrowed(text.trim()),
        Err(_) => {
            std::borrow::Cow::Owned(String::from_utf8_lossy(value.as_bytes()).trim().to_owned())
        }
    })
}
