//! The response envelope of §1.3: `{ "code", "message", "data" }`, JSON, with `X-Request-Id`.

use lambda_http::{Body, Response, http::StatusCode};
use serde::Serialize;

/// The body every response carries. `code` repeats the HTTP status.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<'a, T: Serialize> {
    pub code: u16,
    pub message: &'a str,
    /// Registration repeats the redirect at the top level, as the public API does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect_url: Option<&'a str>,
    pub data: T,
}

/// A response whose enveloped body is already serialized (idempotent replays).
pub fn raw_json_response(
    status: StatusCode,
    body: String,
    request_id: &str,
    extra_headers: &[(&str, String)],
) -> Response<Body> {
    let mut builder = Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-request-id", request_id)
        .header("cache-control", "no-store");
    for (name, value) in extra_headers {
        builder = builder.header(*name, value.as_str());
    }
    builder.body(Body::Text(body)).unwrap_or_else(|_| {
        let mut fallback = Response::new(Body::Empty);
        *fallback.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        fallback
    })
}

/// The text of a response body (our responses are always text).
pub fn body_text(response: &Response<Body>) -> String {
    match response.body() {
        Body::Text(text) => text.clone(),
        Body::Binary(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        _ => String::new(),
    }
}

/// Builds a JSON response in the envelope with the request id header. Extra headers are
/// `(name, value)` pairs (`Location`, `Retry-After`, …).
pub fn json_response<T: Serialize>(
    status: StatusCode,
    message: &str,
    redirect_url: Option<&str>,
    data: T,
    request_id: &str,
    extra_headers: &[(&str, String)],
) -> Response<Body> {
    let envelope = Envelope {
        code: status.as_u16(),
        message,
        redirect_url,
        data,
    };
    // Serializing our own plain structs cannot fail; if it ever did, answer a bare 500 rather
    // than panic inside the handler.
    match serde_json::to_string(&envelope) {
        Ok(body) => raw_json_response(status, body, request_id, extra_headers),
        Err(_) => raw_json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"code":500,"message":"Internal server error","data":{"error":"INTERNAL_ERROR"}}"#
                .to_owned(),
            request_id,
            &[],
        ),
    }
}
