//! Activation codes (§4.1): 8 decimal digits from the OS CSPRNG, stored only as
//! HMAC-SHA-256 keyed by `ACTIVATION_CODE_SECRET` and bound to tenant and customer, so a
//! leaked table reveals no code and a hash can't be replayed for another customer.

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use crate::domain::TenantId;

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
    secret: SecretString,
}

impl std::fmt::Debug for CodeHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeHasher(..)")
    }
}

impl CodeHasher {
    pub fn new(secret: SecretString) -> Self {
        Self { secret }
    }

    /// Hex HMAC-SHA-256 over a versioned, NUL-separated (tenant, customer, code).
    pub fn hash(&self, tenant: &TenantId, customer_id: &str, code: &ActivationCode) -> String {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(self.secret.expose_secret().as_bytes())
                .unwrap_or_else(|_| unreachable!("HMAC takes keys of any size"));
        mac.update(b"onboarding-activation-v1\0");
        mac.update(tenant.as_str().as_bytes());
        mac.update(b"\0");
        mac.update(customer_id.as_bytes());
        mac.update(b"\0");
        mac.update(code.expose().as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher() -> CodeHasher {
        CodeHasher::new(SecretString::from("k".repeat(32)))
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
    fn hashes_are_bound_to_tenant_customer_and_key() {
        let code = ActivationCode::parse("12345678").unwrap();
        let t1 = TenantId::parse("t1").unwrap();
        let t2 = TenantId::parse("t2").unwrap();
        let h = hasher().hash(&t1, "c1", &code);
        assert_eq!(h.len(), 64);
        assert!(!h.contains("12345678"));
        assert_eq!(hasher().hash(&t1, "c1", &code), h);
        assert_ne!(hasher().hash(&t2, "c1", &code), h);
        assert_ne!(hasher().hash(&t1, "c2", &code), h);
        let other = ActivationCode::parse("12345679").unwrap();
        assert_ne!(hasher().hash(&t1, "c1", &other), h);
        let other_key = CodeHasher::new(SecretString::from("x".repeat(32)));
        assert_ne!(other_key.hash(&t1, "c1", &code), h);
    }

    #[test]
    fn debug_output_hides_codes() {
        let code = ActivationCode::parse("12345678").unwrap();
        assert!(!format!("{code:?}").contains("1234"));
    }
}
