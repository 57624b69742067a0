//! Activation codes (§4.1): 8 decimal digits from the OS CSPRNG, stored only as
//! HMAC-SHA-256 keyed by `ACTIVATION_CODE_SECRET` and bound to tenant and customer, so a
//! leaked table reveals no code and a hash can't be replayed for another customer.
//!
//! Each hash also binds how the attempt names the user (§4.2: the user's id, or its e-mail in
//! any case), so a code is stored as two keys, one per name. An attempt's key is then right
//! only when both its code and its `userId` are, and the store can judge it by looking the
//! key up, in the same write that counts it.
//!
//! While the HMAC key is rotated ([`KeySet`]), a code is stored under every key of the set
//! and an attempt is keyed under the current one.

use hmac::Mac;
use secrecy::{ExposeSecret, SecretString};

use crate::domain::TenantId;
use crate::keyed::KeySet;

/// Digits in a code.
pub const CODE_DIGITS: usize = 8;

/// A code in clear: it leaves the service only through the delivery port.
#[derive(Clone)]
pub struct ActivationCode(SecretString);

impl std::fmt::Debug for ActivationCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ActivationCode(********)")
    }
}

impl ActivationCode {
    /// A uniformly random 8-digit code (rejection sampling, no modulo bias).
    pub fn generate() -> anyhow::Result<Self> {
        const RANGE: u32 = 100_000_000;
        const LIMIT: u32 = u32::MAX - (u32::MAX % RANGE);
        loop {
            let n = getrandom::u32().map_err(|e| anyhow::anyhow!("CSPRNG: {e}"))?;
            if n < LIMIT {
                return Ok(Self(SecretString::from(format!("{:08}", n % RANGE))));
            }
        }
    }

    /// A code the client submitted: exactly 8 ASCII digits.
    pub fn parse(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        (raw.len() == CODE_DIGITS && raw.bytes().all(|b| b.is_ascii_digit()))
            .then(|| Self(SecretString::from(raw.to_owned())))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

/// Keyed hashing of codes.
#[derive(Clone)]
pub struct CodeHasher {
    keys: KeySet,
}

impl std::fmt::Debug for CodeHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeHasher(..)")
    }
}

impl CodeHasher {
    pub fn new(keys: KeySet) -> Self {
        Self { keys }
    }

    /// The key of one attempt: hex HMAC-SHA-256, under the current key, over a versioned,
    /// NUL-separated (tenant, customer, code, how the user is named).
    pub fn key(
        &self,
        tenant: &TenantId,
        customer_id: &str,
        code: &ActivationCode,
        user: &UserRef,
    ) -> String {
        Self::key_under(self.keys.current(), tenant, customer_id, code, user)
    }

    fn key_under(
        secret: &SecretString,
        tenant: &TenantId,
        customer_id: &str,
        code: &ActivationCode,
        user: &UserRef,
    ) -> String {
        let mut mac = crate::keyed::mac(secret, b"onboarding-activation-v2\0");
        for part in [tenant.as_str(), customer_id, code.expose()] {
            mac.update(part.as_bytes());
            mac.update(b"\0");
        }
        let (kind, name) = match user {
            UserRef::Id(id) => ("id", id.as_str()),
            UserRef::Email(email) => ("email", email.as_str()),
        };
        mac.update(kind.as_bytes());
        mac.update(b"\0");
        mac.update(name.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The keys a freshly issued code is stored as: one for each way an attempt may name the
    /// user (its id, its normalized e-mail), under each key of the set (two while the key is
    /// rotated), so that a function a rotation step ahead or behind can check it.
    pub fn issue_keys(
        &self,
        tenant: &TenantId,
        customer_id: &str,
        code: &ActivationCode,
        user_id: &str,
        email_normalized: &str,
    ) -> Vec<String> {
        let users = [
            UserRef::Id(user_id.to_owned()),
            UserRef::Email(email_normalized.to_owned()),
        ];
        self.keys
            .all()
            .flat_map(|secret| {
                users
                    .iter()
                    .map(move |user| Self::key_under(secret, tenant, customer_id, code, user))
            })
            .collect()
    }
}

/// How an activation request names the customer's user (§4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserRef {
    /// The user's id (ids are UUIDs, never e-mail addresses): a UUID in its canonical
    /// lower-case form, whatever the case it was sent in; anything else exactly as sent.
    Id(String),
    /// The user's e-mail, normalized as uniqueness is decided (any case, any spelling of
    /// its domain).
    Email(String),
}

impl UserRef {
    /// `userId` as sent: an e-mail address if it parses as one, else an id.
    pub fn given(raw: &str) -> Self {
        let raw = raw.trim();
        match crate::domain::Email::parse(raw) {
            Ok(email) => Self::Email(email.normalized()),
            // A UUID's hex digits are case-insensitive on input (RFC 9562): `userId` is
            // case-insensitive (§4.2) for the id as for the e-mail. Only the hyphenated form
            // the API hands out names the id.
            Err(_) => match uuid::Uuid::try_parse(raw) {
                Ok(id) if raw.len() == 36 => Self::Id(id.hyphenated().to_string()),
                _ => Self::Id(raw.to_owned()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher() -> CodeHasher {
        CodeHasher::new(KeySet::single(SecretString::from("k".repeat(32))))
    }

    #[test]
    fn codes_are_eight_random_digits() {
        let codes: Vec<String> = (0..200)
            .map(|_| ActivationCode::generate().unwrap().expose().to_owned())
            .collect();
        assert!(
            codes
                .iter()
                .all(|c| c.len() == 8 && c.bytes().all(|b| b.is_ascii_digit()))
        );
        let distinct: std::collections::HashSet<_> = codes.iter().collect();
        assert!(
            distinct.len() > 190,
            "200 draws from 10^8 should barely collide"
        );
    }

    #[test]
    fn submitted_codes_must_be_eight_digits() {
        let cases = [
            ("12345678", true),
            (" 12345678 ", true),
            ("1234567", false),
            ("123456789", false),
            ("1234567a", false),
            ("１２３４５６７８", false),
            ("", false),
        ];
        for (raw, ok) in cases {
            assert_eq!(ActivationCode::parse(raw).is_some(), ok, "{raw:?}");
        }
    }

    #[test]
    fn keys_are_bound_to_tenant_customer_code_user_and_secret() {
        let code = ActivationCode::parse("12345678").unwrap();
        let t1 = TenantId::parse("t1").unwrap();
        let t2 = TenantId::parse("t2").unwrap();
        let user = UserRef::Id("u-1".into());
        let h = hasher().key(&t1, "c1", &code, &user);
        assert_eq!(h.len(), 64);
        assert!(!h.contains("12345678"));
        assert_eq!(hasher().key(&t1, "c1", &code, &user), h);
        assert_ne!(hasher().key(&t2, "c1", &code, &user), h);
        assert_ne!(hasher().key(&t1, "c2", &code, &user), h);
        let other = ActivationCode::parse("12345679").unwrap();
        assert_ne!(hasher().key(&t1, "c1", &other, &user), h);
        assert_ne!(
            hasher().key(&t1, "c1", &code, &UserRef::Id("u-2".into())),
            h
        );
        // The same text as an id and as an e-mail are different names.
        assert_ne!(
            hasher().key(&t1, "c1", &code, &UserRef::Email("u-1".into())),
            h
        );
        let other_key = CodeHasher::new(KeySet::single(SecretString::from("x".repeat(32))));
        assert_ne!(other_key.key(&t1, "c1", &code, &user), h);
    }

    /// An attempt's key is one of the issued keys exactly when its code is the issued code
    /// and its `userId` names the user: by id (exactly) or by e-mail (any case or spelling).
    #[test]
    fn an_attempt_matches_only_the_current_code_and_this_customers_user() {
        let t = TenantId::parse("tenant_a").unwrap();
        let code = ActivationCode::parse("12345678").unwrap();
        let issued = hasher().issue_keys(&t, "c-1", &code, "u-1", "jane@example.com");
        assert_eq!(issued.len(), 2);
        let cases = [
            ("12345678", "u-1", true),
            ("12345678", " u-1 ", true),
            ("12345678", "jane@example.com", true),
            ("12345678", "Jane@Example.COM", true),
            ("12345678", "jane@ｅｘａｍｐｌｅ.com", true),
            ("12345678", "\"jane\"@example.com", false),
            ("12345679", "u-1", false),
            ("12345679", "jane@example.com", false),
            ("12345678", "u-2", false),
            ("12345678", "U-1", false),
            ("12345678", "john@example.com", false),
            ("12345678", "", false),
            ("12345678", "   ", false),
        ];
        for (given_code, given_user, expected) in cases {
            let given_code = ActivationCode::parse(given_code).unwrap();
            let key = hasher().key(&t, "c-1", &given_code, &UserRef::given(given_user));
            assert_eq!(
                issued.contains(&key),
                expected,
                "{given_code:?} {given_user:?}"
            );
        }
    }

    /// A user id is a UUID, and a UUID names the same id in either case; other spellings of
    /// it (no hyphens, braces, a URN) are not the id the API hands out.
    #[test]
    fn a_user_id_names_the_user_in_either_case() {
        let t = TenantId::parse("tenant_a").unwrap();
        let code = ActivationCode::parse("12345678").unwrap();
        let id = "8e8edb35-6d53-4694-9a6a-7d943cfada66";
        let issued = hasher().issue_keys(&t, "c-1", &code, id, "jane@example.com");
        let cases = [
            (id, true),
            ("8E8EDB35-6D53-4694-9A6A-7D943CFADA66", true),
            (" 8e8EDB35-6d53-4694-9a6a-7d943cfada66 ", true),
            ("8e8edb356d5346949a6a7d943cfada66", false),
            ("{8e8edb35-6d53-4694-9a6a-7d943cfada66}", false),
            ("urn:uuid:8e8edb35-6d53-4694-9a6a-7d943cfada66", false),
            ("8e8edb35-6d53-4694-9a6a-7d943cfada67", false),
        ];
        for (given_user, expected) in cases {
            let key = hasher().key(&t, "c-1", &code, &UserRef::given(given_user));
            assert_eq!(issued.contains(&key), expected, "{given_user:?}");
        }
    }

    /// The rotation's steps (README → Operating): one key (`a`), `b` added as next, `b`
    /// promoted with `a` kept as previous, `b` alone. A code issued at one step activates
    /// through functions at the same step or one step apart (warm functions keep the keys of
    /// their cold start). A code issued under `a` alone does not once `b` is current: the
    /// runbook waits one code lifetime before promoting `b`.
    #[test]
    fn a_code_issued_one_rotation_step_apart_still_activates() {
        let steps = crate::keyed::rotation_steps();
        let hasher = |step: usize| CodeHasher::new(steps[step].clone());
        let t = TenantId::parse("tenant_a").unwrap();
        let code = ActivationCode::parse("12345678").unwrap();
        let user = UserRef::Id("u-1".into());
        // Row: the step the code was issued at; column: the step of the function it is tried at.
        let activates = [
            [true, true, false, false],
            [true, true, true, true],
            [true, true, true, true],
            [false, false, true, true],
        ];
        for (issued_at, row) in activates.iter().enumerate() {
            let issued = hasher(issued_at).issue_keys(&t, "c-1", &code, "u-1", "j@example.com");
            assert_eq!(issued.len(), if issued_at % 3 == 0 { 2 } else { 4 });
            for (tried_at, expected) in row.iter().enumerate() {
                let key = hasher(tried_at).key(&t, "c-1", &code, &user);
                assert_eq!(
                    issued.contains(&key),
                    *expected,
                    "issued at step {issued_at}, tried at {tried_at}"
                );
            }
        }
    }

    #[test]
    fn debug_output_hides_codes() {
        let code = ActivationCode::parse("12345678").unwrap();
        assert!(!format!("{code:?}").contains("1234"));
    }
}
