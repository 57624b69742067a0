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
    // would be misread, not refused, if its bytes happen to be valid UTF-8. ASCII is UTF-8.
    let other_charset = parts.any(|parameter| {
        parameter.split_once('=').is_some_and(|(name, value)| {
            let value = value.trim().trim_matches('"').to_ascii_lowercase();
            name.trim().eq_ignore_ascii_case("charset")
                && !matches!(value.as_str(), "utf-8" | "utf8" | "us-ascii" | "ascii")
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
    check_json(bytes)?;
    read::<T>(bytes)?.map_err(|(path, expected)| {
        ApiError::Validation(vec![FieldError::new(
            field_of(&path),
            "INVALID_FIELD",
            expected,
        )])
    })
}

/// [`parse_json`], except that a value of the wrong type does not stop it: the value is taken
/// as absent (`null`) and reported, so that the caller can answer every field problem of the
/// body together (§3.2) with its own rules' findings. Each report names the path and what was
/// expected, never the value. Syntax errors and repeated keys end it as in [`parse_json`].
pub fn parse_json_collecting<T: DeserializeOwned>(
    bytes: &[u8],
) -> Result<(T, Vec<FieldError>), ApiError> {
    check_json(bytes)?;
    // A well-typed body is read once; the `Value` is made only for one that is not.
    let mut text = std::borrow::Cow::Borrowed(bytes);
    let mut value: Option<serde_json::Value> = None;
    let mut errors: Vec<FieldError> = Vec::new();
    let mut last: Option<String> = None;
    loop {
        let (path, expected) = match read::<T>(&text)? {
            Ok(dto) => return Ok((dto, errors)),
            Err(wrong) => wrong,
        };
        let segments: Vec<&serde_path_to_error::Segment> = path.iter().collect();
        // The same path again: its value may not be absent (an element of a list), so the
        // list (or object) holding it is.
        let field = field_of(&path);
        let target = if last.as_ref() == Some(&field) {
            &segments[..segments.len().saturating_sub(1)]
        } else {
            errors.push(FieldError::new(field.clone(), "INVALID_FIELD", expected));
            &segments[..]
        };
        let value = match &mut value {
            Some(value) => value,
            None => {
                value.insert(serde_json::from_slice(bytes).map_err(|_| ApiError::MalformedJson)?)
            }
        };
        if errors.len() >= MAX_TYPE_ERRORS || target.is_empty() || !set_null(value, target) {
            return Err(ApiError::Validation(errors));
        }
        // Read from bytes again, not from the `Value`: one deserializer type, so each DTO's
        // deserialization is compiled once (the binary, and its start, stay small).
        text = std::borrow::Cow::Owned(
            serde_json::to_vec(value).map_err(|_| ApiError::MalformedJson)?,
        );
        last = Some(field);
    }
}

/// What every body must be before it is read as a DTO: nested at most [`MAX_DEPTH`] deep
/// (serde skips unknown fields without a depth limit), JSON (so a truncated body is
/// `MALFORMED_JSON` rather than a type error at `[0]`), without a key twice in an object
/// (serde, and a map, would silently take the last), and an object (serde would read a
/// struct from an array too).
fn check_json(bytes: &[u8]) -> Result<(), ApiError> {
    if nesting_depth(bytes) > MAX_DEPTH {
        return Err(ApiError::MalformedJson);
    }
    if let Some(path) = repeated_key(bytes).map_err(|_| ApiError::MalformedJson)? {
        // The path may run through keys the client made up: named, but not at any length.
        let field: String = path.chars().take(200).collect();
        return Err(ApiError::Validation(vec![FieldError::new(
            field,
            "INVALID_FIELD",
            "is given more than once",
        )]));
    }
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::Validation(vec![FieldError::new(
            "",
            "INVALID_FIELD",
            "expected a JSON object",
        )]));
    }
    Ok(())
}

/// Reads `T` from JSON that passed [`check_json`]. The inner `Err` is the first value of the
/// wrong type: its path and what was expected there.
fn read<T: DeserializeOwned>(
    bytes: &[u8],
) -> Result<Result<T, (serde_path_to_error::Path, String)>, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(value) => {
            de.end().map_err(|_| ApiError::MalformedJson)?;
            Ok(Ok(value))
        }
        Err(err) => {
            let path = err.path().clone();
            let inner = err.into_inner();
            match inner.classify() {
                serde_json::error::Category::Data => {
                    Ok(Err((path, expectation(&inner.to_string()))))
                }
                _ => Err(ApiError::MalformedJson),
            }
        }
    }
}

/// The field a path names (`""` for the whole body).
fn field_of(path: &serde_path_to_error::Path) -> String {
    let path = path.to_string();
    if path == "." { String::new() } else { path }
}

/// Type errors reported in one answer at most.
const MAX_TYPE_ERRORS: usize = 20;

/// Sets the value at `path` to `null`; `false` if there is none there.
fn set_null(value: &mut serde_json::Value, path: &[&serde_path_to_error::Segment]) -> bool {
    use serde_path_to_error::Segment;
    let mut at = value;
    for segment in path {
        let next = match segment {
            Segment::Seq { index } => at.get_mut(*index),
            Segment::Map { key } => at.get_mut(key.as_str()),
            Segment::Enum { .. } | Segment::Unknown => None,
        };
        match next {
            Some(next) => at = next,
            None => return false,
        }
    }
    *at = serde_json::Value::Null;
    true
}

/// The path of the first key given twice in one object of `json` (`a.b[0].c`), if any: serde,
/// and a map, would silently take the last. `Err`: `json` is not JSON.
pub fn repeated_key(json: &[u8]) -> Result<Option<String>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(json);
    match serde_path_to_error::deserialize::<_, UniqueKeys>(&mut de) {
        Ok(UniqueKeys) => de.end().map(|()| None),
        Err(err) if err.inner().classify() == serde_json::error::Category::Data => {
            Ok(Some(err.path().to_string()))
        }
        Err(err) => Err(err.into_inner()),
    }
}

/// Reads any JSON value and refuses an object that repeats a key (serde_path_to_error then
/// names the key's path).
struct UniqueKeys;

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueKeys)
    }
}

impl<'de> serde::de::Visitor<'de> for UniqueKeys {
    type Value = UniqueKeys;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self, A::Error> {
        let mut keys = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if keys.contains(&key) {
                // Raised inside the value, so that the error's path ends with the key.
                return map.next_value_seed(Repeated);
            }
            map.next_value::<UniqueKeys>()?;
            keys.insert(key);
        }
        Ok(UniqueKeys)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<UniqueKeys>()?.is_some() {}
        Ok(UniqueKeys)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self, E> {
        Ok(UniqueKeys)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self, E> {
        Ok(UniqueKeys)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self, E> {
        Ok(UniqueKeys)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self, E> {
        Ok(UniqueKeys)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self, E> {
        Ok(UniqueKeys)
    }
    fn visit_unit<E>(self) -> Result<Self, E> {
        Ok(UniqueKeys)
    }
}

/// Fails at once: the value of a repeated key.
struct Repeated;

impl<'de> serde::de::DeserializeSeed<'de> for Repeated {
    type Value = UniqueKeys;

    fn deserialize<D: serde::Deserializer<'de>>(self, _: D) -> Result<UniqueKeys, D::Error> {
        Err(serde::de::Error::custom("a key is given more than once"))
    }
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
        let cases: [(&str, &str, Option<&str>); 12] = [
            ("{}", "application/json", None),
            ("{}", "application/json; charset=utf-8", None),
            ("{}", "application/json;charset=\"UTF-8\"", None),
            ("{}", "application/json; charset=utf8", None),
            ("{}", "application/json; charset=US-ASCII", None),
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

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Wide {
        name: Option<String>,
        age: Option<u32>,
        tags: Option<Vec<String>>,
        items: Option<Vec<Item>>,
        person: Option<Person>,
    }
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Item {
        code: Option<String>,
    }

    #[test]
    fn every_value_of_the_wrong_type_is_reported_and_taken_as_absent() {
        let fields = |errors: &[FieldError]| -> Vec<String> {
            errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect()
        };
        let (dto, errors) = parse_json_collecting::<Wide>(
            br#"{"name":42,"age":"x","tags":["a",7,"b"],"items":[{"code":1},"no",{"code":"ok"}],"person":{"password":12345678901}}"#,
        )
        .unwrap();
        assert_eq!(
            fields(&errors),
            [
                "name: expected a string",
                "age: expected u32",
                "tags[1]: expected a string",
                "items[0].code: expected a string",
                "items[1]: expected a JSON object",
                "person.password: expected a string",
            ]
        );
        assert!(errors.iter().all(|e| !e.message.contains("12345678901")));
        assert!(dto.name.is_none() && dto.age.is_none());
        // An element that can't be absent takes its list with it.
        assert!(dto.tags.is_none() && dto.items.is_none());
        assert!(dto.person.unwrap().password.is_none());

        let (dto, errors) = parse_json_collecting::<Wide>(br#"{"name":"n","age":3}"#).unwrap();
        assert!(errors.is_empty());
        assert_eq!(dto.name.as_deref(), Some("n"));
        // Not an object at all: one error, as parse_json says it.
        match parse_json_collecting::<Wide>(b"[1]") {
            Err(ApiError::Validation(errors)) => {
                assert_eq!(fields(&errors), [": expected a JSON object"]);
            }
            other => panic!("expected a validation error, got {other:?}"),
        }
        assert_eq!(
            parse_json_collecting::<Wide>(b"{").err(),
            Some(ApiError::MalformedJson)
        );
    }

    #[test]
    fn a_key_given_twice_is_named_wherever_it_is() {
        let cases = [
            (r#"{"name":"a","name":"b"}"#, "name"),
            (
                r#"{"person":{"password":"a","password":"b"}}"#,
                "person.password",
            ),
            (r#"{"items":[{},{"code":"a","code":"a"}]}"#, "items[1].code"),
            (r#"{"unknown":{"x":1,"x":2}}"#, "unknown.x"),
        ];
        for (body, field) in cases {
            for result in [
                parse_json::<Wide>(body.as_bytes()).map(|_| ()),
                parse_json_collecting::<Wide>(body.as_bytes()).map(|_| ()),
            ] {
                match result {
                    Err(ApiError::Validation(errors)) => {
                        assert_eq!(errors.len(), 1, "{body}");
                        assert_eq!(errors[0].field, field, "{body}");
                        assert_eq!(errors[0].message, "is given more than once", "{body}");
                    }
                    other => panic!("{body}: expected a validation error, got {other:?}"),
                }
            }
        }
        assert!(parse_json::<Wide>(br#"{"items":[{"code":"a"},{"code":"a"}]}"#).is_ok());
    }
}
