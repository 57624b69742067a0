//! Builds the API Gateway HTTP API (payload v2.0) event for a local request, exactly the JSON a
//! Lambda receives in AWS, and lets `lambda_http` turn it into the `Request` the handlers see.

use std::collections::HashMap;

use base64::Engine as _;
use serde_json::{Map, Value, json};

/// What the gateway knows about one request.
pub struct Incoming<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a http::HeaderMap,
    pub body: &'a [u8],
    pub route_key: &'a str,
    pub path_parameters: &'a [(&'static str, String)],
    pub claims: &'a HashMap<String, String>,
    pub request_id: &'a str,
    pub source_ip: &'a str,
}

pub fn build(incoming: &Incoming<'_>) -> Value {
    let mut headers = Map::new();
    for name in incoming.headers.keys() {
        let values: Vec<String> = incoming
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        headers.insert(name.as_str().to_ascii_lowercase(), json!(values.join(",")));
    }
    // API Gateway sets Host to its own domain; a client's Host never reaches the function
    // (lambda_http builds the request URI from it and would choke on a malformed one).
    headers.insert("host".into(), json!("127.0.0.1"));
    let user_agent = headers.get("user-agent").cloned().unwrap_or(json!(""));
    let mut query = Map::new();
    for pair in incoming.query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        query.insert(k.to_owned(), json!(v));
    }
    let path_parameters: Map<String, Value> = incoming
        .path_parameters
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    // HTTP API passes text media types as text and base64-encodes every other body (an
    // `application/vnd.api+json` body, or one without a Content-Type, arrives encoded).
    let media_type = incoming
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let textual = media_type.starts_with("text/")
        || matches!(
            media_type.as_str(),
            "application/json" | "application/javascript" | "application/xml"
        );
    let (body, is_base64) = match std::str::from_utf8(incoming.body) {
        _ if incoming.body.is_empty() => (Value::Null, false),
        Ok(text) if textual => (json!(text), false),
        _ => (
            json!(base64::engine::general_purpose::STANDARD.encode(incoming.body)),
            true,
        ),
    };
    let now = chrono::Utc::now();
    let mut event = json!({
        "version": "2.0",
        "routeKey": incoming.route_key,
        "rawPath": incoming.path,
        "rawQueryString": incoming.query,
        "headers": headers,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": "127.0.0.1",
            "domainPrefix": "local",
            "http": {
                "method": incoming.method,
                "path": incoming.path,
                "protocol": "HTTP/1.1",
                "sourceIp": incoming.source_ip,
                "userAgent": user_agent,
            },
            "requestId": incoming.request_id,
            "routeKey": incoming.route_key,
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": now.timestamp_millis(),
            "authorizer": { "jwt": { "claims": incoming.claims, "scopes": null } },
        },
        "body": body,
        "isBase64Encoded": is_base64,
    });
    if !query.is_empty() {
        event["queryStringParameters"] = Value::Object(query);
    }
    if !path_parameters.is_empty() {
        event["pathParameters"] = Value::Object(path_parameters);
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_text_for_text_media_types_and_base64_otherwise() {
        let cases = [
            (Some("application/json"), false),
            (Some("application/json; charset=utf-8"), false),
            (Some("text/plain"), false),
            (Some("application/vnd.api+json"), true),
            (None, true),
        ];
        for (content_type, base64) in cases {
            let mut headers = http::HeaderMap::new();
            if let Some(ct) = content_type {
                headers.insert(http::header::CONTENT_TYPE, ct.parse().unwrap());
            }
            let event = build(&Incoming {
                method: "POST",
                path: "/x",
                query: "",
                headers: &headers,
                body: b"{}",
                route_key: "$default",
                path_parameters: &[],
                claims: &HashMap::new(),
                request_id: "r",
                source_ip: "127.0.0.1",
            });
            assert_eq!(event["isBase64Encoded"], base64, "{content_type:?}");
            let expected = if base64 { "e30=" } else { "{}" };
            assert_eq!(event["body"], expected, "{content_type:?}");
        }
    }
}
