//! Categorization lookup (§2): `GET /categorization/hierarchy/{tenantId}` returns the caller's
//! tenant's hierarchy, served from the warm function's cache. This function also answers the
//! gateway's `$default` route: unknown paths get 404 `ROUTE_NOT_FOUND`, known paths with the
//! wrong method 405 `METHOD_NOT_ALLOWED`.

use std::sync::Arc;
use std::time::Instant;

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use shared::api::auth::{self, scopes};
use shared::api::outcome::{
    finish, in_request_span, record_route, storage_failure, within_deadline,
};
use shared::api::routes::{self, Function};
use shared::api::{ApiError, json_response, request_id};
use shared::categorization::HierarchyCache;
use shared::config::Config;
use shared::domain::TenantId;
use shared::store::HierarchySource;

const ROUTE: &str = "GET /categorization/hierarchy/{tenantId}";
const PREFLIGHT: &str = "OPTIONS /{proxy+}";
const UNROUTED: &str = "-";

/// The categorization function, built once per cold start.
pub struct Categorization {
    config: Config,
    hierarchies: HierarchyCache,
}

impl Categorization {
    pub fn new(config: Config, source: Arc<dyn HierarchySource>) -> Self {
        let hierarchies = HierarchyCache::new(source, config.hierarchy_cache_ttl);
        Self {
            config,
            hierarchies,
        }
    }

    /// Handles one API Gateway request; never fails (errors are designed responses).
    pub async fn handle(&self, req: Request) -> Response<Body> {
        let started = Instant::now();
        let request_id = request_id(&req);
        in_request_span(&request_id, self.answer(&req, &request_id, started)).await
    }

    async fn answer(&self, req: &Request, request_id: &str, started: Instant) -> Response<Body> {
        let route = route_of(req);
        record_route(route);
        if route == PREFLIGHT {
            // A CORS preflight (the one route without the JWT authorizer): no data, no
            // token needed; API Gateway adds the configured CORS headers.
            let response = Response::builder()
                .status(StatusCode::NO_CONTENT)
                .header("x-request-id", request_id)
                .body(Body::Empty)
                .unwrap_or_default();
            return finish(PREFLIGHT, request_id, None, started, Ok(response));
        }
        let mut tenant = None;
        let result = within_deadline(req, self.lookup(req, request_id, &mut tenant)).await;
        finish(
            route,
            request_id,
            tenant.as_ref().map(TenantId::as_str),
            started,
            result,
        )
    }

    async fn lookup(
        &self,
        req: &Request,
        request_id: &str,
        tenant_out: &mut Option<TenantId>,
    ) -> Result<Response<Body>, ApiError> {
        let (route, params) = routes::from_request(req)?;
        if route.function != Function::Categorization {
            return Err(ApiError::RouteNotFound);
        }
        let caller = auth::caller(req, &self.config.tenant_claim, scopes::CATEGORIZATION_READ)?;
        *tenant_out = Some(caller.tenant.clone());
        let header =
            auth::tenant_header(req).ok_or(ApiError::MissingHeaders(vec!["X-Tenant-ID"]))?;
        auth::check_tenant_header(&caller, &header)?;
        let path_tenant = routes::param(&params, "tenantId").unwrap_or_default();
        let path_tenant = TenantId::parse(path_tenant).map_err(|_| ApiError::InvalidTenantId)?;
        if path_tenant != caller.tenant {
            return Err(ApiError::TenantMismatch);
        }
        let hierarchy = self
            .hierarchies
            .get(&caller.tenant)
            .await
            .map_err(storage_failure)?
            .ok_or(ApiError::CategorizationNotFound)?;
        Ok(json_response(
            StatusCode::OK,
            "Hierarchy retrieved successfully",
            None,
            hierarchy.as_ref(),
            request_id,
            &[],
        ))
    }
}

/// The route label of a request: API Gateway also sends this binary every OPTIONS request
/// (as `PreflightFunction` with CORS on; through `$default`, after the token, with CORS off)
/// and, through `$default`, every unknown route (answered 404/405 under [`UNROUTED`]).
fn route_of(req: &Request) -> &'static str {
    if req.method() == lambda_http::http::Method::OPTIONS {
        return PREFLIGHT;
    }
    match routes::from_request(req) {
        Ok((route, _)) if route.function == Function::Categorization => ROUTE,
        _ => UNROUTED,
    }
}

impl shared::lambda::Handler for Categorization {
    fn handle(&self, req: Request) -> impl std::future::Future<Output = Response<Body>> + Send {
        Categorization::handle(self, req)
    }

    fn route(&self, req: &Request) -> &'static str {
        route_of(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::store::memory::MemoryStore;

    fn function(with_hierarchy: bool) -> Categorization {
        let demo: serde_json::Value =
            serde_json::from_str(include_str!("../../../../shared/spec/demo-hierarchy.json"))
                .unwrap();
        let store = if with_hierarchy {
            MemoryStore::with_hierarchy(serde_json::from_value(demo["tenants"][0].clone()).unwrap())
        } else {
            MemoryStore::default()
        };
        let config = Config::from_lookup(|n| (n == "TABLE_NAME").then(|| "t".to_owned())).unwrap();
        Categorization::new(config, Arc::new(store))
    }

    #[tokio::test]
    async fn categorization_events_get_their_contract_answers() {
        let cases: [(&str, &str, bool, u16, &str); 4] = [
            (
                "get",
                include_str!("../../../events/categorization-get-hierarchy.json"),
                true,
                200,
                "",
            ),
            (
                "none",
                include_str!("../../../events/categorization-get-hierarchy.json"),
                false,
                404,
                "CATEGORIZATION_NOT_FOUND",
            ),
            (
                "other",
                include_str!("../../../events/categorization-other-tenant.json"),
                true,
                403,
                "TENANT_MISMATCH",
            ),
            (
                "default",
                include_str!("../../../events/default-unknown-route.json"),
                true,
                404,
                "ROUTE_NOT_FOUND",
            ),
        ];
        for (name, event, seeded, status, code) in cases {
            let response = function(seeded)
                .handle(lambda_http::request::from_str(event).unwrap())
                .await;
            let json: serde_json::Value = match response.body() {
                Body::Text(text) => serde_json::from_str(text).unwrap(),
                other => panic!("{name}: unexpected body {other:?}"),
            };
            assert_eq!(response.status().as_u16(), status, "{name}: {json}");
            if status == 200 {
                assert_eq!(json["data"]["tenantName"], "Finsei Ltd");
                assert_eq!(json["data"]["categories"].as_object().unwrap().len(), 3);
            } else {
                assert_eq!(json["data"]["error"], code, "{name}");
            }
        }
    }
}
