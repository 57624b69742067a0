//! Tenant ids (§1.1): 1–64 characters of `[A-Za-z0-9_-]`, which also keeps DynamoDB key
//! separators (`#`) out of every key built from them.

use serde::{Deserialize, Serialize};

/// A well-formed tenant id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let ok = (1..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err("tenant ids are 1-64 characters of A-Z, a-z, 0-9, '_' and '-'")
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantId {
    type Error = &'static str;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<TenantId> for String {
    fn from(value: TenantId) -> Self {
        value.0
    }
}

impl std::fmt::Display for TenantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_follow_the_contract_charset() {
        let cases = [
            ("97e7ff29-15f3-49ef-9681-3bbfcce4f6cd", true),
            ("fh_api_finsei_ltd_7f957f77", true),
            ("a", true),
            (&"a".repeat(64), true),
            (&"a".repeat(65), false),
            ("", false),
            ("t#1", false),
            ("t/1", false),
            ("t 1", false),
            ("tė", false),
        ];
        for (raw, ok) in cases {
            assert_eq!(TenantId::parse(raw).is_ok(), ok, "{raw:?}");
        }
    }
}
