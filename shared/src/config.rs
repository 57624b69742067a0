//! Configuration (CONVENTIONS §5): read once at cold start into a typed struct; a missing or
//! bad value stops the process with a message naming the variable.

use std::time::Duration;

/// Settings shared by the functions. Every variable is listed in the README.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `TABLE_NAME` (required): the DynamoDB table.
    pub table_name: String,
    /// `TENANT_CLAIM` (default `tenant_id`): the JWT claim that names the tenant.
    pub tenant_claim: String,
    /// `MIN_CUSTOMER_AGE` (default 18).
    pub min_customer_age: u32,
    /// `HIERARCHY_CACHE_TTL_SECONDS` (default 60; 0 disables the cache).
    pub hierarchy_cache_ttl: Duration,
    /// `ACTIVATION_REDIRECT_URL_TEMPLATE` (default `/auth/activate-account?customerId={customerId}`).
    pub redirect_url_template: String,
}

/// A configuration problem, naming the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration: {variable} {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads from any lookup (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |name: &'static str| {
            get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let number = |name: &'static str, default: u64, max: u64| -> Result<u64, ConfigError> {
            match var(name) {
                None => Ok(default),
                Some(raw) => raw
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n <= max)
                    .ok_or_else(|| ConfigError {
                        variable: name,
                        problem: format!("must be a whole number from 0 to {max}"),
                    }),
            }
        };
        let table_name = var("TABLE_NAME").ok_or(ConfigError {
            variable: "TABLE_NAME",
            problem: "is required".into(),
        })?;
        let redirect_url_template = var("ACTIVATION_REDIRECT_URL_TEMPLATE")
            .unwrap_or_else(|| "/auth/activate-account?customerId={customerId}".into());
        if !redirect_url_template.contains("{customerId}") {
            return Err(ConfigError {
                variable: "ACTIVATION_REDIRECT_URL_TEMPLATE",
                problem: "must contain {customerId}".into(),
            });
        }
        Ok(Self {
            table_name,
            tenant_claim: var("TENANT_CLAIM").unwrap_or_else(|| "tenant_id".into()),
            min_customer_age: u32::try_from(number("MIN_CUSTOMER_AGE", 18, 120)?).unwrap_or(18),
            hierarchy_cache_ttl: Duration::from_secs(number(
                "HIERARCHY_CACHE_TTL_SECONDS",
                60,
                3600,
            )?),
            redirect_url_template,
        })
    }

    /// The redirect for a newly registered customer.
    pub fn redirect_url(&self, customer_id: &str) -> String {
        self.redirect_url_template
            .replace("{customerId}", customer_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_apply_when_only_the_table_is_set() {
        let c = config(&[("TABLE_NAME", "t")]).unwrap();
        assert_eq!(c.tenant_claim, "tenant_id");
        assert_eq!(c.min_customer_age, 18);
        assert_eq!(c.hierarchy_cache_ttl, Duration::from_secs(60));
        assert_eq!(
            c.redirect_url("abc"),
            "/auth/activate-account?customerId=abc"
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        let cases = [
            (vec![], "TABLE_NAME"),
            (
                vec![("TABLE_NAME", "t"), ("MIN_CUSTOMER_AGE", "old")],
                "MIN_CUSTOMER_AGE",
            ),
            (
                vec![("TABLE_NAME", "t"), ("HIERARCHY_CACHE_TTL_SECONDS", "-1")],
                "HIERARCHY_CACHE_TTL_SECONDS",
            ),
            (
                vec![
                    ("TABLE_NAME", "t"),
                    ("ACTIVATION_REDIRECT_URL_TEMPLATE", "/x"),
                ],
                "ACTIVATION_REDIRECT_URL_TEMPLATE",
            ),
        ];
        for (pairs, variable) in cases {
            assert_eq!(config(&pairs).unwrap_err().variable, variable);
        }
    }
}
