//! Key formats of the single table (§5). Tenant ids and codes are restricted to
//! `[A-Za-z0-9_-]`, so the `#` separators stay unambiguous; the e-mail, last, may hold any
//! character. Every partition key starts with the tenant, and customers and e-mail markers
//! each get their own partition: no hot tenant partition on registration.

use crate::domain::TenantId;

pub const PK: &str = "PK";
pub const SK: &str = "SK";

pub fn customer(tenant: &TenantId, customer_id: &str) -> (String, &'static str) {
    (
        format!("TENANT#{tenant}#CUSTOMER#{customer_id}"),
        "CUSTOMER",
    )
}

pub fn email(tenant: &TenantId, normalized_email: &str) -> (String, &'static str) {
    (format!("TENANT#{tenant}#EMAIL#{normalized_email}"), "EMAIL")
}

pub fn categorization_pk(tenant: &TenantId) -> String {
    format!("TENANT#{tenant}#CATEGORIZATION")
}

pub const TENANT_SK: &str = "TENANT";

pub fn category_sk(code: &str) -> String {
    format!("CATEGORY#{code}")
}

pub fn feature_sk(code: &str) -> String {
    format!("FEATURE#{code}")
}

pub fn idempotency(tenant: &TenantId, key: &str) -> (String, &'static str) {
    (format!("TENANT#{tenant}#IDEMPOTENCY#{key}"), "IDEMPOTENCY")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_contract_layout() {
        let t = TenantId::parse("t1").unwrap();
        assert_eq!(
            customer(&t, "c1"),
            ("TENANT#t1#CUSTOMER#c1".into(), "CUSTOMER")
        );
        assert_eq!(
            email(&t, "a@b.lt"),
            ("TENANT#t1#EMAIL#a@b.lt".into(), "EMAIL")
        );
        assert_eq!(categorization_pk(&t), "TENANT#t1#CATEGORIZATION");
        assert_eq!(category_sk("LOW"), "CATEGORY#LOW");
        assert_eq!(feature_sk("F"), "FEATURE#F");
        assert_eq!(idempotency(&t, "k").0, "TENANT#t1#IDEMPOTENCY#k");
    }
}
