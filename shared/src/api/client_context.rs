//! Client-context headers (§1.2): who called from where, stored with the customer as the audit
//! record of registration and activation. Never logged: a device id is personal data.

use lambda_http::{Request, RequestExt, request::RequestContext};
use serde::{Deserialize, Serialize};

use super::{ApiError, FieldError, header};

/// Longest value accepted for any client-context header.
pub const MAX_HEADER_CHARS: usize = 256;

/// The audit context of one call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientContext {
    pub forwarded_from: String,
    pub platform: String,
    pub device_id: String,
    pub user_agent: String,
    /// The end user's IP as `X-Forwarded-For` names it (client-supplied: parsed, not trusted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// The address the gateway saw the request come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
}

/// `(canonical name, aliases)` of the required headers, in the order they are reported.
const REQUIRED: [(&str, &[&str]); 4] = [
    ("X-Forwarded-From", &[]),
    ("platform", &["sec-ch-ua-platform"]),
    ("deviceId", &["x-device-id", "device-id"]),
    ("User-Agent", &[]),
];

/// Reads the client context. `tenant_missing` adds `X-Tenant-ID` to the missing list, so one
/// 400 names every missing header.
pub fn extract(req: &Request, tenant_missing: bool) -> Result<ClientContext, ApiError> {
    let mut missing: Vec<&'static str> = Vec::new();
    if tenant_missing {
        missing.push("X-Tenant-ID");
    }
    let mut too_long = Vec::new();
    let mut values: Vec<String> = Vec::with_capacity(REQUIRED.len());
    for (name, aliases) in REQUIRED {
        let value = std::iter::once(name)
            .chain(aliases.iter().copied())
            .filter_map(|n| header(req, n))
            .map(|v| v.trim_matches('"').trim().to_owned())
            .find(|v| !v.is_empty());
        match value {
            None => missing.push(name),
            Some(v)
                if v.chars().count() > MAX_HEADER_CHARS
                    || crate::domain::unicode::has_disallowed(&v) =>
            {
                too_long.push(FieldError::new(
                    format!("headers.{name}"),
                    "INVALID_FIELD",
                    format!("must be at most {MAX_HEADER_CHARS} printable characters"),
                ));
                values.push(String::new());
            }
            Some(v) => values.push(v.to_owned()),
        }
    }
    if !missing.is_empty() {
        return Err(ApiError::MissingHeaders(missing));
    }
    if !too_long.is_empty() {
        return Err(ApiError::Validation(too_long));
    }
    let source_ip = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx
            .http
            .source_ip
            .as_deref()
            .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
            .map(|ip| ip.to_string()),
        _ => None,
    };
    let ip = header(req, "x-forwarded-for")
        .and_then(|v| v.split(',').next().map(str::trim).map(str::to_owned))
        .and_then(|v| v.parse::<std::net::IpAddr>().ok())
        .map(|ip| ip.to_string())
        .or_else(|| source_ip.clone());
    let mut values = values.into_iter();
    let mut next = || values.next().unwrap_or_default();
    Ok(ClientContext {
        forwarded_from: next(),
        platform: next(),
        device_id: next(),
        user_agent: next(),
        ip,
        source_ip,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::Body;

    fn request(headers: &[(&str, &str)]) -> Request {
        let mut builder = lambda_http::http::Request::builder().uri("/x");
        for (n, v) in headers {
            builder = builder.header(*n, *v);
        }
        builder.body(Body::Empty).unwrap()
    }

    #[test]
    fn every_missing_header_is_named_in_one_answer() {
        let req = request(&[("User-Agent", "curl")]);
        assert_eq!(
            extract(&req, true),
            Err(ApiError::MissingHeaders(vec![
                "X-Tenant-ID",
                "X-Forwarded-From",
                "platform",
                "deviceId"
            ]))
        );
    }

    #[test]
    fn aliases_are_accepted_and_quotes_stripped() {
        let req = request(&[
            ("x-forwarded-from", " web-app "),
            ("sec-ch-ua-platform", "\"Android\""),
            ("X-Device-Id", "dev-1"),
            ("user-agent", "Mozilla/5.0"),
            ("x-forwarded-for", "203.0.113.7, 10.0.0.1"),
        ]);
        let ctx = extract(&req, false).unwrap();
        assert_eq!(ctx.forwarded_from, "web-app");
        assert_eq!(ctx.platform, "Android");
        assert_eq!(ctx.device_id, "dev-1");
        assert_eq!(ctx.ip.as_deref(), Some("203.0.113.7"));
    }

    #[test]
    fn overlong_or_invisible_values_are_rejected() {
        let long = "x".repeat(257);
        // A bidirectional isolate and a zero-width space, sent as UTF-8 bytes.
        for device in [long.as_str(), "dev\u{2066}-1", "dev\u{200B}1"] {
            let req = request(&[
                ("x-forwarded-from", "web-app"),
                ("platform", "web"),
                ("deviceId", device),
                ("user-agent", "ua"),
            ]);
            match extract(&req, false) {
                Err(ApiError::Validation(errors)) => {
                    assert_eq!(errors[0].field, "headers.deviceId", "{device:?}");
                }
                other => panic!("{device:?}: expected a validation error, got {other:?}"),
            }
        }
    }
}
