//! `Idempotency-Key` (§3.6): the header's rules and the hash of the canonical body that
//! decides whether a repeated key carries the same request.

use hmac::Mac;
use lambda_http::Request;
use serde_json::Value;

use super::{ApiError, FieldError, header};
use crate::keyed::KeySet;
use crate::store::BodyHash;

/// Records live 24 hours.
pub const RETENTION_SECONDS: i64 = 24 * 3600;
/// An in-progress claim older than this belongs to a request that died (functions time out
/// well before it), and may be taken over.
pub const LOCK_SECONDS: i64 = 60;

/// The key, if sent: 1–255 printable ASCII characters.
pub fn key(req: &Request) -> Result<Option<String>, ApiError> {
    let Some(raw) = header(req, "idempotency-key") else {
        return Ok(None);
    };
    let ok = (1..=255).contains(&raw.len()) && raw.bytes().all(|b| (0x20..=0x7e).contains(&b));
    if ok {
        Ok(Some(raw.into_owned()))
    } else {
        Err(ApiError::Validation(vec![FieldError::new(
            "headers.Idempotency-Key",
            "INVALID_FIELD",
            "must be 1-255 printable ASCII characters",
        )]))
    }
}

/// Hashes request bodies for their key's record: HMAC-SHA-256 (hex) keyed by the server
/// secret (`ACTIVATION_CODE_SECRET`, under a label of its own), of the body with object keys
/// sorted and insignificant whitespace removed, so a client that re-serializes the same
/// request differently is still recognised.
///
/// Keyed because a registration body holds the password: a plain hash in the record would let
/// anyone who reads the table (an export, a backup) test password guesses at SHA-256 speed,
/// around Argon2. A new key makes the records of the 24 h before it unrecognisable (a retry
/// with the same key would get 422), unless it is rotated in steps ([`KeySet`]): a record's
/// hash is made under the current key and recognised under every key of the set.
pub struct BodyHasher {
    keys: KeySet,
}

impl std::fmt::Debug for BodyHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BodyHasher(..)")
    }
}

impl BodyHasher {
    pub fn new(keys: KeySet) -> Self {
        Self { keys }
    }

    /// The body's hash under each key: the current key's to store, the others' to recognise
    /// records written a rotation step behind or ahead.
    pub fn hash(&self, body: &[u8]) -> BodyHash {
        let text = match serde_json::from_slice::<Value>(body) {
            Ok(value) => canonical(&value),
            Err(_) => String::from_utf8_lossy(body).into_owned(),
        };
        let mut hashes = self.keys.all().map(|secret| {
            let mut mac = crate::keyed::mac(secret, b"onboarding-idempotency-body-v1\0");
            mac.update(text.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        });
        BodyHash {
            stored: hashes.next().unwrap_or_default(),
            others: hashes.collect(),
        }
    }
}

fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&map[k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::Body;

    fn with_key(value: &str) -> Request {
        lambda_http::http::Request::builder()
            .header("Idempotency-Key", value)
            .body(Body::Empty)
            .unwrap()
    }

    #[test]
    fn keys_are_one_to_255_printable_ascii_characters() {
        let cases = [
            ("a", true),
            ("order-2026-11-25#1", true),
            (&"k".repeat(255), true),
            (&"k".repeat(256), false),
            ("tab\there", false),
        ];
        for (raw, ok) in cases {
            assert_eq!(key(&with_key(raw)).is_ok(), ok, "{raw:?}");
        }
        let none = lambda_http::http::Request::builder()
            .body(Body::Empty)
            .unwrap();
        assert_eq!(key(&none), Ok(None));
    }

    #[test]
    fn the_same_request_serialized_differently_has_the_same_hash() {
        let a = br#"{"b": 1, "a": {"y": [1, 2], "x": "s"}}"#;
        let b = br#"{"a":{"x":"s","y":[1,2]},"b":1}"#;
        let c = br#"{"a":{"x":"s","y":[2,1]},"b":1}"#;
        let hasher = hasher_of(&"k".repeat(32));
        assert_eq!(hasher.hash(a), hasher.hash(b));
        assert_ne!(hasher.hash(a), hasher.hash(c));
    }

    /// The record must not be a password check anyone with the table can run: neither the
    /// plain SHA-256 of the canonical body nor a hash without the server's secret.
    #[test]
    fn the_body_hash_needs_the_server_secret() {
        use sha2::{Digest, Sha256};
        let body = br#"{"email":"a@example.com","password":"SecurePass123!"}"#;
        let hasher = hasher_of(&"k".repeat(32));
        let plain = hex::encode(Sha256::digest(canonical(
            &serde_json::from_slice(body).unwrap(),
        )));
        let hash = hasher.hash(body);
        assert_ne!(hash.stored, plain);
        assert_ne!(hash.stored, hasher_of(&"x".repeat(32)).hash(body).stored);
        assert_eq!(hash.stored.len(), 64);
        assert!(hash.others.is_empty());
    }

    fn hasher_of(secret: &str) -> BodyHasher {
        BodyHasher::new(KeySet::parse(secret).unwrap())
    }

    /// The rotation's steps (README → Operating), as for codes: a record written at one step
    /// is recognised at the same step and one step apart, and at two steps only while its key
    /// is still in the set (the runbook waits a record's 24 h before dropping `previous`).
    #[test]
    fn a_record_written_one_rotation_step_apart_is_still_recognised() {
        let steps = crate::keyed::rotation_steps().map(BodyHasher::new);
        let body = br#"{"email":"a@example.com"}"#;
        let other_body = br#"{"email":"b@example.com"}"#;
        // Row: the step the record was written at; column: the step of the function reading it.
        let recognised = [
            [true, true, true, false],
            [true, true, true, false],
            [false, true, true, true],
            [false, true, true, true],
        ];
        for (written_at, row) in recognised.iter().enumerate() {
            let record = steps[written_at].hash(body).stored;
            for (read_at, expected) in row.iter().enumerate() {
                assert_eq!(
                    steps[read_at].hash(body).matches(&record),
                    *expected,
                    "written at step {written_at}, read at {read_at}"
                );
                assert!(!steps[read_at].hash(other_body).matches(&record));
            }
        }
    }
}
