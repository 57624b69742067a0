//! HMAC-SHA-256 under the server secret (`ACTIVATION_CODE_SECRET`): activation code keys and
//! `Idempotency-Key` body hashes, each under a label of its own so neither can stand for the
//! other.

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// A MAC keyed by `secret` that has already taken `label` (a versioned, NUL-terminated name).
pub(crate) fn mac(secret: &SecretString, label: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.expose_secret().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any size"));
    mac.update(label);
    mac
}

/// The server's HMAC keys: one key, or, while it is rotated, a key set
/// `{"current": "…", "next": "…", "previous": "…"}` (`next` and `previous` optional).
///
/// What a function makes for itself is made with `current`: an activation attempt's key, and
/// the body hash a new `Idempotency-Key` record stores. What a function leaves for others to
/// check is made under every key: an issued code is stored under each, and a record's body
/// hash is recognised under each. Warm functions keep the keys they read at cold start, so
/// during a rotation (README → Operating) functions one step apart run side by side: with
/// every step only adding a key, promoting one or dropping one, each can check what the
/// other wrote.
#[derive(Clone)]
pub struct KeySet {
    current: SecretString,
    /// `next` and `previous`, when set.
    others: Vec<SecretString>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeySet([redacted]; {} keys)", self.count())
    }
}

/// The fewest characters a key may have.
pub const MIN_KEY_CHARS: usize = 32;

const FIELDS: [&str; 3] = ["current", "next", "previous"];

impl KeySet {
    /// One key, nothing rotating.
    pub fn single(key: SecretString) -> Self {
        Self {
            current: key,
            others: Vec::new(),
        }
    }

    /// From the secret's value: a key set if it starts with `{` (a generated key has no
    /// punctuation), else one key. `Err`: what is wrong, naming no key.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let long_enough = |key: &SecretString| key.expose_secret().chars().count() >= MIN_KEY_CHARS;
        if !raw.trim_start().starts_with('{') {
            let key = SecretString::from(raw.to_owned());
            return if long_enough(&key) {
                Ok(Self::single(key))
            } else {
                Err(format!("must be at least {MIN_KEY_CHARS} characters"))
            };
        }
        let Fields(fields) = serde_json::from_str(raw).map_err(|e| match e.classify() {
            // `Fields`' own messages, or serde's type errors, which name no string.
            serde_json::error::Category::Data => format!("is not a valid key set: {e}"),
            _ => format!(
                "starts with {{ but is not a JSON object (line {}, column {}): a key set is \
                 {{\"current\": \"…\", \"next\": \"…\", \"previous\": \"…\"}}",
                e.line(),
                e.column()
            ),
        })?;
        let mut keys: Vec<SecretString> = Vec::new();
        for (field, key) in FIELDS.iter().zip(fields) {
            let Some(key) = key else {
                if *field == "current" {
                    return Err("is a key set without its current key".into());
                }
                continue;
            };
            if !long_enough(&key) {
                return Err(format!(
                    "is a key set whose {field} key is shorter than {MIN_KEY_CHARS} characters"
                ));
            }
            if keys
                .iter()
                .any(|other| other.expose_secret() == key.expose_secret())
            {
                return Err("is a key set that names one key twice".into());
            }
            keys.push(key);
        }
        let mut keys = keys.into_iter();
        let current = keys.next().unwrap_or_else(|| unreachable!("checked above"));
        Ok(Self {
            current,
            others: keys.collect(),
        })
    }

    /// The key of what a function makes for itself.
    pub fn current(&self) -> &SecretString {
        &self.current
    }

    /// How many keys: 1, or 2 during a rotation.
    pub fn count(&self) -> usize {
        1 + self.others.len()
    }

    /// Every key, `current` first.
    pub fn all(&self) -> impl Iterator<Item = &SecretString> {
        std::iter::once(&self.current).chain(&self.others)
    }
}

/// A key set's fields in [`FIELDS`]' order, each given at most once (`null`: not given).
/// Its errors name a field at most, never a value.
struct Fields([Option<SecretString>; 3]);

impl<'de> serde::Deserialize<'de> for Fields {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Fields;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of the keys current, next and previous")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Fields, A::Error> {
                use serde::de::Error as _;
                let mut given: [Option<Option<SecretString>>; 3] = Default::default();
                while let Some(name) = map.next_key::<String>()? {
                    let Some(i) = FIELDS.iter().position(|field| *field == name) else {
                        return Err(A::Error::custom(
                            "a field other than current, next and previous",
                        ));
                    };
                    if given[i].is_some() {
                        return Err(A::Error::custom(format!("{} given twice", FIELDS[i])));
                    }
                    given[i] = Some(map.next_value::<Option<String>>()?.map(SecretString::from));
                }
                Ok(Fields(given.map(Option::flatten)))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// The rotation's steps (README → Operating), for tests: `a` alone, `b` added as next, `b`
/// promoted with `a` kept as previous, `b` alone.
#[cfg(test)]
pub(crate) fn rotation_steps() -> [KeySet; 4] {
    let (a, b) = ("a".repeat(MIN_KEY_CHARS), "b".repeat(MIN_KEY_CHARS));
    [
        a.clone(),
        format!(r#"{{"current":"{a}","next":"{b}"}}"#),
        format!(r#"{{"current":"{b}","previous":"{a}"}}"#),
        b,
    ]
    .map(|raw| KeySet::parse(&raw).unwrap())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: char) -> String {
        c.to_string().repeat(MIN_KEY_CHARS)
    }

    fn exposed(set: &KeySet) -> Vec<String> {
        set.all().map(|k| k.expose_secret().to_owned()).collect()
    }

    #[test]
    fn a_secret_is_one_key_or_a_key_set() {
        let (a, b, c) = (key('a'), key('b'), key('c'));
        let accepted = [
            (a.clone(), vec![a.clone()]),
            // A plain key is taken as it is, spaces and all.
            (format!(" {a} "), vec![format!(" {a} ")]),
            // Only `{` starts a key set.
            (format!(r#"["{a}"]"#), vec![format!(r#"["{a}"]"#)]),
            (format!(r#"{{"current":"{a}"}}"#), vec![a.clone()]),
            (
                format!(r#" {{"next": "{b}", "current": "{a}"}} "#),
                vec![a.clone(), b.clone()],
            ),
            (
                format!(r#"{{"current":"{a}","next":null}}"#),
                vec![a.clone()],
            ),
            (
                format!(r#"{{"current":"{b}","previous":"{a}"}}"#),
                vec![b.clone(), a.clone()],
            ),
            (
                format!(r#"{{"current":"{a}","next":"{b}","previous":"{c}"}}"#),
                vec![a.clone(), b.clone(), c.clone()],
            ),
        ];
        for (raw, keys) in accepted {
            let set = KeySet::parse(&raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(exposed(&set), keys, "{raw}");
            assert_eq!(set.current().expose_secret(), keys[0], "{raw}");
        }
    }

    #[test]
    fn a_bad_key_set_says_what_is_wrong_without_a_key() {
        let (a, b) = (key('a'), key('b'));
        let short = "s".repeat(MIN_KEY_CHARS - 1);
        let refused = [
            (short.clone(), "at least 32 characters"),
            (String::new(), "at least 32 characters"),
            (
                format!(r#"{{"current":"{a}",}}"#),
                "not a JSON object (line 1, column",
            ),
            (format!(r#"{{"current":"{a}""#), "not a JSON object"),
            (format!(r#"{{"current":"{a}"}} x"#), "not a JSON object"),
            (format!(r#"{{"next":"{a}"}}"#), "without its current key"),
            (r#"{"current":null}"#.to_owned(), "without its current key"),
            (
                format!(r#"{{"current":"{short}"}}"#),
                "current key is shorter than 32",
            ),
            (
                format!(r#"{{"current":"{a}","next":"{short}"}}"#),
                "next key is shorter",
            ),
            (
                format!(r#"{{"current":"{a}","previous":7}}"#),
                "invalid type: integer",
            ),
            (
                format!(r#"{{"current":["{a}"]}}"#),
                "invalid type: sequence",
            ),
            (
                format!(r#"{{"current":"{a}","current":"{b}"}}"#),
                "current given twice",
            ),
            (
                format!(r#"{{"current":"{a}","next":"{a}"}}"#),
                "one key twice",
            ),
            (
                format!(r#"{{"current":"{a}","previous":"{b}","next":"{b}"}}"#),
                "one key twice",
            ),
            (
                format!(r#"{{"current":"{a}","{b}":"{b}"}}"#),
                "a field other than current, next and previous",
            ),
        ];
        for (raw, problem) in refused {
            let error = KeySet::parse(&raw).map(|s| exposed(&s)).unwrap_err();
            assert!(error.contains(problem), "{raw}: {error}");
            for secret in [&a, &b, &short] {
                assert!(!error.contains(secret.as_str()), "{raw}: {error}");
            }
        }
    }

    #[test]
    fn debug_output_hides_the_keys() {
        let set = KeySet::parse(&format!(
            r#"{{"current":"{}","next":"{}"}}"#,
            key('a'),
            key('b')
        ))
        .unwrap();
        assert_eq!(format!("{set:?}"), "KeySet([redacted]; 2 keys)");
    }
}
