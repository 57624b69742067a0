//! Authentication and tenancy (§1.1). The HTTP API's JWT authorizer has already verified the
//! token; the function reads the verified claims from `requestContext.authorizer.jwt` and fails
//! closed: no claims, no tenant claim, no scope, or an `X-Tenant-ID` that differs → refused.

use lambda_http::{Request, RequestExt, request::RequestContext};

use super::{ApiError, header};
use crate::domain::TenantId;

/// Scopes of the contract's routes.
pub mod scopes {
    pub const CATEGORIZATION_READ: &str = "onboarding/categorization.read";
    pub const CUSTOMERS_WRITE: &str = "onboarding/customers.write";
    pub const CUSTOMERS_ACTIVATE: &str = "onboarding/customers.activate";
}

/// The caller, as the verified token describes it (its scopes are checked, not kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub tenant: TenantId,
}

/// Reads the verified claims and checks the scope. Errors: 401 when the context carries no
/// claims or no usable tenant claim; 403 `INSUFFICIENT_SCOPE` when `required` is not granted.
pub fn caller(
    req: &Request,
    tenant_claim: &str,
    required: &'static str,
) -> Result<Caller, ApiError> {
    let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref() else {
        return Err(ApiError::Unauthorized);
    };
    let Some(jwt) = ctx.authorizer.as_ref().and_then(|a| a.jwt.as_ref()) else {
        return Err(ApiError::Unauthorized);
    };
    if jwt.claims.is_empty() {
        return Err(ApiError::Unauthorized);
    }
    let tenant = jwt
        .claims
        .get(tenant_claim)
        .and_then(|t| TenantId::parse(t).ok())
        .ok_or(ApiError::Unauthorized)?;
    super::outcome::record_tenant(tenant.as_str());

    // The HTTP API passes `scope` (and `scp`, as Okta and Entra ID name it) as a claim
    // string: space-separated scope tokens (RFC 6749 §3.3), or an array claim rendered as
    // `[a b]`. Only whitespace separates tokens: a token may itself contain `,` or brackets,
    // and `a,onboarding/customers.write` is not the scope `onboarding/customers.write`.
    let mut scopes: Vec<String> = ["scope", "scp"]
        .iter()
        .filter_map(|name| jwt.claims.get(*name))
        .flat_map(|value| {
            let value = value.trim();
            value
                .strip_prefix('[')
                .and_then(|v| v.strip_suffix(']'))
                .unwrap_or(value)
                .split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    scopes.extend(jwt.scopes.iter().flatten().cloned());
    if !scopes.iter().any(|s| s == required) {
        return Err(ApiError::InsufficientScope { required });
    }
    Ok(Caller { tenant })
}

/// Checks `X-Tenant-ID` against the token's tenant. A missing header is reported by the
/// caller together with the other missing headers, so this takes the raw value.
pub fn check_tenant_header(caller: &Caller, raw: &str) -> Result<(), ApiError> {
    let header_tenant = TenantId::parse(raw).map_err(|_| ApiError::InvalidTenantId)?;
    if header_tenant != caller.tenant {
        return Err(ApiError::TenantMismatch);
    }
    Ok(())
}

/// `X-Tenant-ID`, trimmed, if present.
pub fn tenant_header(req: &Request) -> Option<std::borrow::Cow<'_, str>> {
    header(req, "x-tenant-id").filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(claims: &str, tenant_header: Option<&str>) -> Request {
        let headers = match tenant_header {
            Some(t) => format!(r#"{{"x-tenant-id":"{t}"}}"#),
            None => "{}".to_owned(),
        };
        let authorizer = if claims.is_empty() {
            String::new()
        } else {
            format!(r#","authorizer":{{"jwt":{{"claims":{claims},"scopes":null}}}}"#)
        };
        let json = format!(
            r#"{{"version":"2.0","routeKey":"GET /x","rawPath":"/x","rawQueryString":"",
            "headers":{headers},"requestContext":{{"accountId":"1","apiId":"a","domainName":"d",
            "domainPrefix":"d","http":{{"method":"GET","path":"/x","protocol":"HTTP/1.1",
            "sourceIp":"127.0.0.1","userAgent":"t"}},"requestId":"r","routeKey":"GET /x",
            "stage":"$default","time":"t","timeEpoch":0{authorizer}}},"isBase64Encoded":false}}"#
        );
        lambda_http::request::from_str(&json).expect("event parses")
    }

    #[test]
    fn claims_missing_from_the_context_fail_closed() {
        let req = event("", Some("t1"));
        assert_eq!(
            caller(&req, "tenant_id", scopes::CUSTOMERS_WRITE),
            Err(ApiError::Unauthorized)
        );
    }

    #[test]
    fn tenant_and_scopes_are_read_from_verified_claims() {
        let req = event(
            r#"{"tenant_id":"t1","scope":"onboarding/customers.write onboarding/x"}"#,
            Some("t1"),
        );
        let c = caller(&req, "tenant_id", scopes::CUSTOMERS_WRITE).unwrap();
        assert_eq!(c.tenant.as_str(), "t1");
        assert_eq!(
            check_tenant_header(&c, &tenant_header(&req).unwrap()),
            Ok(())
        );
    }

    #[test]
    fn the_tenant_claim_name_is_configurable() {
        let req = event(
            r#"{"custom:tenant_id":"t1","scope":"onboarding/customers.write"}"#,
            None,
        );
        assert!(caller(&req, "custom:tenant_id", scopes::CUSTOMERS_WRITE).is_ok());
        assert_eq!(
            caller(&req, "tenant_id", scopes::CUSTOMERS_WRITE),
            Err(ApiError::Unauthorized)
        );
    }

    #[test]
    fn a_token_without_the_route_scope_is_forbidden() {
        let req = event(
            r#"{"tenant_id":"t1","scope":"onboarding/categorization.read"}"#,
            None,
        );
        assert_eq!(
            caller(&req, "tenant_id", scopes::CUSTOMERS_WRITE),
            Err(ApiError::InsufficientScope {
                required: scopes::CUSTOMERS_WRITE
            })
        );
    }

    #[test]
    fn scopes_are_whitespace_separated_tokens_or_an_array_claim() {
        // (scope claim, holds onboarding/customers.write)
        let cases = [
            (r#""scope":"onboarding/customers.write""#, true),
            (r#""scope":"openid  onboarding/customers.write\tx""#, true),
            (r#""scp":"[onboarding/x onboarding/customers.write]""#, true),
            (r#""scope":"[onboarding/customers.write]""#, true),
            (r#""scope":"a,onboarding/customers.write""#, false),
            (r#""scope":"onboarding/customers.write,b""#, false),
            (r#""scope":"[a,onboarding/customers.write]""#, false),
            (r#""scope":"onboarding/customers.write]""#, false),
            (r#""scope":"onboarding/customers.writer""#, false),
            (r#""scope":"""#, false),
        ];
        for (claim, allowed) in cases {
            let req = event(&format!(r#"{{"tenant_id":"t1",{claim}}}"#), None);
            assert_eq!(
                caller(&req, "tenant_id", scopes::CUSTOMERS_WRITE).is_ok(),
                allowed,
                "{claim}"
            );
        }
    }

    #[test]
    fn tenant_header_must_match_and_be_well_formed() {
        let c = Caller {
            tenant: TenantId::parse("t1").unwrap(),
        };
        assert_eq!(check_tenant_header(&c, "t2"), Err(ApiError::TenantMismatch));
        assert_eq!(
            check_tenant_header(&c, "t#1"),
            Err(ApiError::InvalidTenantId)
        );
        assert_eq!(check_tenant_header(&c, "t1"), Ok(()));
    }
}
