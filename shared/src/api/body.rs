//! Request hygiene (§1.4): size limit, JSON content type, base64 bodies, and JSON parsing that
//! reports the path of a wrong type without echoing the offending value (it may be a password).

use lambda_http::{Body, Request};
use serde::de::DeserializeOwned;

use super::{ApiError, FieldError, header};

/// Largest body accepted (64 KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The raw bytes of a POST body after the size and media-type checks. `lambda_http` has already
/// decoded a base64 body from the gateway into `Body::Binary`.
pub fn json_bytes(req: &Request) -> Result<&[u8], ApiError> {
    let bytes: &[u8] = match req.body() {
        Body::Empty => &[],
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => &[],
    };
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    let content_type = header(req, "content-type").unwrap_or_default();
    let mut parts = content_type.split(';');
    let media_type = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let is_json = media_type == "application/json"
        || media_type
            .strip_prefix("application/")
            .and_then(|subtype| subtype.strip_suffix("+json"))
            .is_some_and(|name| !name.is_empty());
    // The body is read as UTF-8 (JSON's only encoding, RFC 8259): another declared charset
    // would be misread, not refused, if its bytes happen to be valid UTF-8.
    let other_charset = parts.any(|parameter| {
        parameter.split_once('=').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("charset")
                && !value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        })
    });
    if !is_json || other_charset {
        return Err(ApiError::UnsupportedMediaType);
    }
    Ok(bytes)
}

/// Parses a JSON body into a DTO. Syntax errors → `MALFORMED_JSON`; a value of the wrong type →
/// `VALIDATION_FAILED` with the JSON path and what was expected.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // serde skips unknown fields without a depth limit; no request of the contract nests
    // deeper than a handful of levels.
    if nesting_depth(bytes) > MAX_DEPTH {
        return Err(ApiError::MalformedJson);
    }
    // Syntax first, so a truncated body is MALFORMED_JSON rather than a type error at [0].
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(|_| ApiError::MalformedJson)?;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    let value = match result {
        Ok(value) => value,
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            return Err(match inner.classify() {
                serde_json::error::Category::Data => {
                    let field = if path == "." { String::new() } else { path };
                    ApiError::Validation(vec![FieldError::new(
                        field,
                        "INVALID_FIELD",
                        expectation(&inner.to_string()),
                    )])
                }
                _ => ApiError::MalformedJson,
            });
        }
    };
    de.end().map_err(|_| ApiError::MalformedJson)?;
    Ok(value)
}

/// Deepest nesting of arrays and objects accepted in a body.
pub const MAX_DEPTH: usize = 32;

/// The deepest `[`/`{` nesting outside strings (a linear scan, no recursion).
fn nesting_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// serde's messages read "invalid type: string \"…\", expected …": keep only the expectation,
/// which comes from our types, never from the client's value.
fn expectation(message: &str) -> String {
    match message.rsplit_once("expected ") {
        Some((_, expected)) => {
            let expected = expected.split(" at line ").next().unwrap_or(expected);
            if expected.starts_with("struct ") || expected.starts_with("a map") {
                "expected a JSON object".to_owned()
            } else {
                format!("expected {expected}")
            }
        }
        None => "has the wrong JSON type".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Dto {
        person: Option<Person>,
    }
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Person {
        password: Option<String>,
    }

    fn post(body: &str, content_type: &str) -> Request {
        lambda_http::http::Request::builder()
            .method("POST")
            .uri("/x")
            .header("content-type", content_type)
            .body(Body::Text(body.to_owned()))
            .unwrap()
    }

    #[test]
    fn body_rules_answer_with_their_codes() {
        let cases: [(&str, &str, Option<&str>); 10] = [
            ("{}", "application/json", None),
            ("{}", "application/json; charset=utf-8", None),
            ("{}", "application/json;charset=\"UTF-8\"", None),
            (
                "{}",
                "application/json; charset=iso-8859-1",
                Some("UNSUPPORTED_MEDIA_TYPE"),
            ),
            (
                "{}",
                "application/json; charset=utf-16",
                Some("UNSUPPORTED_MEDIA_TYPE"),
            ),
            ("{}", "application/+json", Some("UNSUPPORTED_MEDIA_TYPE")),
            ("{}", "text/plain", Some("UNSUPPORTED_MEDIA_TYPE")),
            ("{}", "", Some("UNSUPPORTED_MEDIA_TYPE")),
            ("{\"a\":1}", "application/vnd.api+json", None),
            (
                &"x".repeat(MAX_BODY_BYTES + 1),
                "application/json",
                Some("PAYLOAD_TOO_LARGE"),
            ),
        ];
        for (body, content_type, expected) in cases {
            let req = post(body, content_type);
            let got = json_bytes(&req).err().map(|e| e.code());
            assert_eq!(got, expected, "content type {content_type:?}");
        }
    }

    #[test]
    fn deep_nesting_anywhere_is_refused() {
        let deep = format!(
            "{{\"ignored\":{}{}}}",
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert_eq!(
            parse_json::<Dto>(deep.as_bytes()).err(),
            Some(ApiError::MalformedJson)
        );
        let within = format!("{{\"ignored\":{}{}}}", "[".repeat(30), "]".repeat(30));
        assert!(parse_json::<Dto>(within.as_bytes()).is_ok());
        let brackets_in_strings = format!("{{\"x\":\"{}\\\"\"}}", "[".repeat(100));
        assert!(parse_json::<Dto>(brackets_in_strings.as_bytes()).is_ok());
    }

    #[test]
    fn syntax_errors_are_malformed_json() {
        for body in ["{", "", "{\"person\":}", "[1,2", "{} trailing"] {
            assert_eq!(
                parse_json::<Dto>(body.as_bytes()).err(),
                Some(ApiError::MalformedJson),
                "body {body:?}"
            );
        }
    }

    #[test]
    fn a_body_that_is_not_an_object_is_a_type_error_without_internal_names() {
        for body in ["[1,2]", "\"text\"", "42", "null"] {
            match parse_json::<Dto>(body.as_bytes()) {
                Err(ApiError::Validation(errors)) => {
                    assert_eq!(errors[0].message, "expected a JSON object", "{body}")
                }
                other => panic!("{body}: expected a validation error, got {other:?}"),
            }
        }
    }

    #[test]
    fn wrong_types_name_the_path_but_never_echo_the_value() {
        let err = parse_json::<Dto>(br#"{"person":{"password":12345678901}}"#).unwrap_err();
        match err {
            ApiError::Validation(errors) => {
                assert_eq!(errors[0].field, "person.password");
                assert!(
                    !errors[0].message.contains("12345678901"),
                    "{}",
                    errors[0].message
                );
            }
            other => panic!("expected validation error, got {other:?}"),
        }
    }
}
