//! The local stand-in for the HTTP API's JWT authorizer: verifies signature, `iss`, `aud`
//! (or Cognito's `client_id`), `exp` and `nbf`, then hands the claims on as strings, the way
//! API Gateway fills `requestContext.authorizer.jwt.claims`. Tokens are HS256 with a local
//! secret: `make token` mints them.

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde_json::{Map, Value, json};

/// Issuer, audience and key of the local authorizer.
#[derive(Clone)]
pub struct LocalAuthorizer {
    pub issuer: String,
    pub audience: String,
    secret: Vec<u8>,
    pub tenant_claim: String,
}

/// Why a token was refused (the gateway answers 401 either way).
#[derive(Debug, PartialEq, Eq)]
pub struct Rejected(pub String);

impl LocalAuthorizer {
    pub const DEFAULT_ISSUER: &'static str = "http://127.0.0.1/local-issuer";
    pub const DEFAULT_AUDIENCE: &'static str = "onboarding-api";
    pub const DEFAULT_SECRET: &'static str = "local-development-only-secret-do-not-deploy";

    pub fn new(issuer: &str, audience: &str, secret: &str, tenant_claim: &str) -> Self {
        Self {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            secret: secret.as_bytes().to_vec(),
            tenant_claim: tenant_claim.to_owned(),
        }
    }

    /// From `LOCAL_JWT_ISSUER`, `LOCAL_JWT_AUDIENCE`, `LOCAL_JWT_SECRET`, `TENANT_CLAIM`.
    pub fn from_env() -> Self {
        let var =
            |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
        Self::new(
            &var("LOCAL_JWT_ISSUER", Self::DEFAULT_ISSUER),
            &var("LOCAL_JWT_AUDIENCE", Self::DEFAULT_AUDIENCE),
            &var("LOCAL_JWT_SECRET", Self::DEFAULT_SECRET),
            &var("TENANT_CLAIM", "tenant_id"),
        )
    }

    /// A token for `tenant` with `scopes`, valid for `ttl_seconds`.
    pub fn mint(&self, tenant: &str, scopes: &[&str], ttl_seconds: i64) -> String {
        let now = chrono::Utc::now().timestamp();
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(self.issuer));
        claims.insert("aud".into(), json!(self.audience));
        claims.insert("sub".into(), json!(format!("local-client-{tenant}")));
        claims.insert("iat".into(), json!(now));
        claims.insert("exp".into(), json!(now + ttl_seconds));
        claims.insert(self.tenant_claim.clone(), json!(tenant));
        claims.insert("scope".into(), json!(scopes.join(" ")));
        self.sign(&Value::Object(claims))
    }

    /// Signs arbitrary claims (tests forge expired or foreign tokens with it).
    pub fn sign(&self, claims: &Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(&self.secret),
        )
        .unwrap_or_default()
    }

    /// Verifies `Authorization: Bearer <token>` (or the bare token, which HTTP API's JWT
    /// authorizer accepts too) and returns the claims as API Gateway passes them.
    pub fn verify(&self, authorization: Option<&str>) -> Result<HashMap<String, String>, Rejected> {
        let token = authorization
            .map(|h| {
                let h = h.trim();
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
                    .unwrap_or(h)
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Rejected("no bearer token".into()))?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iss"]);
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.leeway = 0;
        let data = decode::<Map<String, Value>>(
            token,
            &DecodingKey::from_secret(&self.secret),
            &validation,
        )
        .map_err(|e| Rejected(e.to_string()))?;
        let claims = data.claims;
        // API Gateway's JWT authorizer: `exp` after now, and `iat`, if present, not after
        // now (jsonwebtoken still takes `exp == now` and never reads `iat`).
        let now = jsonwebtoken::get_current_timestamp() as f64;
        if claims
            .get("exp")
            .and_then(Value::as_f64)
            .is_some_and(|exp| exp <= now)
        {
            return Err(Rejected("expired".into()));
        }
        if claims
            .get("iat")
            .and_then(Value::as_f64)
            .is_some_and(|iat| iat > now)
        {
            return Err(Rejected("issued in the future".into()));
        }
        // HTTP API takes the audience from `aud` (a string or a list) and looks at
        // `client_id` only when there is no `aud`: an `aud` that does not match (whatever its
        // type) is refused, whatever `client_id` says.
        let audience_ok = match claims.get("aud") {
            Some(Value::String(a)) => a == &self.audience,
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(&self.audience)),
            Some(_) => false,
            None => claims.get("client_id").and_then(Value::as_str) == Some(&self.audience),
        };
        if !audience_ok {
            return Err(Rejected("audience".into()));
        }
        Ok(claims
            .into_iter()
            .map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s,
                    Value::Array(items) => format!(
                        "[{}]",
                        items
                            .iter()
                            .map(|i| i
                                .as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| i.to_string()))
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                    other => other.to_string(),
                };
                (k, text)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authorizer() -> LocalAuthorizer {
        LocalAuthorizer::new("iss-1", "aud-1", "secret", "tenant_id")
    }

    #[test]
    fn minted_tokens_verify_and_carry_tenant_and_scope() {
        let a = authorizer();
        let token = a.mint("t1", &["s1", "s2"], 60);
        let claims = a.verify(Some(&format!("Bearer {token}"))).unwrap();
        assert_eq!(claims["tenant_id"], "t1");
        assert_eq!(claims["scope"], "s1 s2");
        // HTTP API takes the token with or without the scheme.
        assert_eq!(a.verify(Some(&token)).unwrap()["tenant_id"], "t1");
    }

    #[test]
    fn bad_tokens_are_rejected() {
        let a = authorizer();
        let now = chrono::Utc::now().timestamp();
        let other_key =
            LocalAuthorizer::new("iss-1", "aud-1", "other", "tenant_id").mint("t1", &[], 60);
        let expired =
            a.sign(&json!({"iss":"iss-1","aud":"aud-1","exp": now - 10,"tenant_id":"t1"}));
        let wrong_iss = a.sign(&json!({"iss":"evil","aud":"aud-1","exp": now + 60}));
        let wrong_aud = a.sign(&json!({"iss":"iss-1","aud":"other","exp": now + 60}));
        let no_exp = a.sign(&json!({"iss":"iss-1","aud":"aud-1"}));
        for header in [
            None,
            Some("Basic abc".to_owned()),
            Some("Bearer ".to_owned()),
            Some(String::new()),
            Some("Bearer not.a.jwt".to_owned()),
            Some(format!("Bearer {other_key}")),
            Some(format!("Bearer {expired}")),
            Some(format!("Bearer {wrong_iss}")),
            Some(format!("Bearer {wrong_aud}")),
            Some(format!("Bearer {no_exp}")),
        ] {
            assert!(a.verify(header.as_deref()).is_err(), "{header:?}");
        }
    }

    #[test]
    fn tokens_expiring_now_or_issued_later_are_rejected_as_api_gateway_does() {
        let a = authorizer();
        let now = jsonwebtoken::get_current_timestamp();
        let claims = |exp: u64, iat: u64| json!({"iss":"iss-1","aud":"aud-1","exp": exp,"iat": iat,"tenant_id":"t1"});
        // Signed and verified within the same second as `now` (or, if a second turns, one
        // that has passed: refused either way).
        let expiring_now = a.sign(&claims(now, now - 60));
        assert!(a.verify(Some(&expiring_now)).is_err(), "exp == now");
        let issued_later = a.sign(&claims(now + 7200, now + 3600));
        assert_eq!(
            a.verify(Some(&issued_later)).unwrap_err().0,
            "issued in the future"
        );
        let fine = a.sign(&claims(now + 60, now));
        assert!(a.verify(Some(&fine)).is_ok());
    }

    #[test]
    fn cognito_access_tokens_name_the_audience_in_client_id() {
        let a = authorizer();
        let now = chrono::Utc::now().timestamp();
        let token = a.sign(&json!({"iss":"iss-1","client_id":"aud-1","exp": now + 60}));
        assert!(a.verify(Some(&format!("Bearer {token}"))).is_ok());
        // With an `aud`, `client_id` is not looked at (API Gateway's rule).
        for aud in [
            json!("other"),
            json!(["other"]),
            json!(7),
            json!(null),
            json!({}),
        ] {
            let token =
                a.sign(&json!({"iss":"iss-1","aud": aud,"client_id":"aud-1","exp": now + 60}));
            assert!(
                a.verify(Some(&format!("Bearer {token}"))).is_err(),
                "aud {aud} with the right client_id"
            );
        }
    }
}
