//! The local gateway (§7): serves the routes of `template.yaml` on 127.0.0.1, verifies bearer
//! tokens as the HTTP API JWT authorizer would, builds the same v2.0 event API Gateway sends,
//! and calls the very handler functions the Lambdas run. Scopes are checked by the functions
//! (as in AWS, where routes declare no `AuthorizationScopes`: the gateway's own 403 would not
//! be the contract's envelope). The one deliberate difference from AWS: a refused token gets
//! the contract's 401 envelope here, where API Gateway answers `{"message":"Unauthorized"}`.

pub mod event;
pub mod jwt;

use std::sync::Arc;

use activation::Activation;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use categorization::Categorization;
use lambda_http::Body;
use registration::Registration;
use shared::activation::delivery::CodeSender;
use shared::activation::settings::ActivationSettings;
use shared::api::ApiError;
use shared::api::routes::{self, Function};
use shared::clock::{Clock, SystemClock};
use shared::config::Config;
use shared::lambda::answer;
use shared::store::dynamodb::DynamoStore;

pub use jwt::LocalAuthorizer;

/// The CORS preflight route: every OPTIONS request, no authorizer (see `template.yaml`; there
/// it exists only with CORS on, which the local gateway always behaves as).
const PREFLIGHT_ROUTE: &str = "OPTIONS /{proxy+}";

/// API Gateway's own payload limit (the functions enforce the contract's 64 KiB).
const GATEWAY_MAX_BODY: usize = 10 * 1024 * 1024;

/// The three functions, as their `main`s build them (shared, so that each request runs as
/// `shared::lambda::answer` runs it in a Lambda).
pub struct Functions {
    pub categorization: Arc<Categorization>,
    pub registration: Arc<Registration>,
    pub activation: Arc<Activation>,
}

impl Functions {
    pub fn new(
        config: Config,
        activation: &ActivationSettings,
        store: DynamoStore,
        sender: Arc<dyn CodeSender>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let store = Arc::new(store);
        Self {
            categorization: Arc::new(Categorization::new(config.clone(), store.clone())),
            registration: Arc::new(Registration::new(
                config.clone(),
                activation,
                store.clone(),
                store.clone(),
                store.clone(),
                sender.clone(),
                clock.clone(),
            )),
            activation: Arc::new(Activation::new(config, activation, store, sender, clock)),
        }
    }

    pub fn with_system_clock(
        config: Config,
        activation: &ActivationSettings,
        store: DynamoStore,
        sender: Arc<dyn CodeSender>,
    ) -> Self {
        Self::new(config, activation, store, sender, Arc::new(SystemClock))
    }
}

/// Gateway state: the functions and the authorizer.
pub struct Gateway {
    pub functions: Functions,
    pub authorizer: LocalAuthorizer,
    /// Each invocation's deadline is this far after it starts, as Lambda sets it from the
    /// function's timeout.
    pub timeout: std::time::Duration,
}

/// The functions' timeout in `template.yaml` (`Globals.Function.Timeout`).
pub const LAMBDA_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The contract as OpenAPI 3.1, served by the local gateway at `/openapi.yaml`.
pub const OPENAPI: &str = include_str!("../../../openapi.yaml");

pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route(
            "/openapi.yaml",
            axum::routing::get(|| async { ([("content-type", "application/yaml")], OPENAPI) }),
        )
        .fallback(dispatch)
        .with_state(gateway)
}

/// `(METHOD, path)` of every operation in the OpenAPI document.
pub fn openapi_routes(document: &str) -> anyhow::Result<Vec<(String, String)>> {
    use serde_norway::Value;
    let doc: Value = serde_norway::from_str(document)?;
    let paths = doc
        .get("paths")
        .and_then(Value::as_mapping)
        .ok_or_else(|| anyhow::anyhow!("no paths"))?;
    let mut routes = Vec::new();
    for (path, item) in paths {
        let path = path.as_str().unwrap_or_default();
        for method in ["get", "put", "post", "delete", "patch", "head", "options"] {
            if item.get(method).is_some() {
                routes.push((method.to_uppercase(), path.to_owned()));
            }
        }
    }
    routes.sort();
    Ok(routes)
}

async fn dispatch(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let (parts, body) = request.into_parts();
    let body: Bytes = match axum::body::to_bytes(body, GATEWAY_MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(_) => return to_axum(ApiError::PayloadTooLarge.into_response(&request_id)),
    };
    let method = parts.method.as_str();
    let path = parts.uri.path();

    // Route selection as API Gateway does it: a declared route (`OPTIONS /{proxy+}` for
    // every OPTIONS), else `$default`.
    let preflight = parts.method == http::Method::OPTIONS;
    let (route_key, function, path_parameters) = match routes::resolve(method, path) {
        _ if preflight => (PREFLIGHT_ROUTE.to_owned(), None, Vec::new()),
        Ok((route, params)) => (
            format!("{} {}", route.method, route.path),
            Some(route.function),
            params,
        ),
        Err(_) => ("$default".to_owned(), None, Vec::new()),
    };

    // Every route has the JWT authorizer but the preflight one (no token in a preflight).
    let authorization = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let claims = match gateway.authorizer.verify(authorization) {
        Ok(claims) => claims,
        Err(_) if preflight => Default::default(),
        Err(_) => return to_axum(ApiError::Unauthorized.into_response(&request_id)),
    };

    let incoming = event::Incoming {
        method,
        path,
        query: parts.uri.query().unwrap_or(""),
        headers: &parts.headers,
        body: &body,
        route_key: &route_key,
        path_parameters: &path_parameters,
        claims: &claims,
        request_id: &request_id,
        source_ip: "127.0.0.1",
    };
    let event = event::build(&incoming).to_string();
    let lambda_request = match lambda_http::request::from_str(&event) {
        Ok(req) => {
            // The invocation's context, with its deadline, as the Lambda runtime attaches it.
            let mut context = lambda_http::Context::default();
            context.request_id = request_id.clone();
            let deadline = std::time::SystemTime::now() + gateway.timeout;
            context.deadline = deadline
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            lambda_http::RequestExt::with_lambda_context(req, context)
        }
        Err(err) => {
            tracing::error!(error = %err, "local gateway built an event lambda_http cannot read");
            return to_axum(ApiError::Internal.into_response(&request_id));
        }
    };
    let f = &gateway.functions;
    // As the Lambda loop runs each request: a panic is answered 500 and logged there too.
    let response = match function {
        Some(Function::Registration) => answer(Arc::clone(&f.registration), lambda_request).await,
        Some(Function::Activation) => answer(Arc::clone(&f.activation), lambda_request).await,
        Some(Function::Categorization) | None => {
            answer(Arc::clone(&f.categorization), lambda_request).await
        }
    };
    to_axum(response)
}

fn to_axum(response: lambda_http::Response<Body>) -> Response {
    let (parts, body) = response.into_parts();
    let bytes: Vec<u8> = match body {
        Body::Text(text) => text.into_bytes(),
        Body::Binary(bytes) => bytes,
        _ => Vec::new(),
    };
    let mut out = (parts.status, bytes).into_response();
    for (name, value) in &parts.headers {
        out.headers_mut().insert(name, value.clone());
    }
    out
}

/// `(METHOD, path)` of every HttpApi event in a SAM template, `$default` included.
pub fn template_routes(template: &str) -> anyhow::Result<Vec<(String, String)>> {
    use serde_norway::Value;
    let doc: Value = serde_norway::from_str(template)?;
    let mut routes = Vec::new();
    let resources = doc
        .get("Resources")
        .and_then(Value::as_mapping)
        .ok_or_else(|| anyhow::anyhow!("no Resources"))?;
    for resource in resources.values() {
        let Some(events) = resource
            .get("Properties")
            .and_then(|p| p.get("Events"))
            .and_then(Value::as_mapping)
        else {
            continue;
        };
        for event in events.values() {
            if event.get("Type").and_then(Value::as_str) != Some("HttpApi") {
                continue;
            }
            let props = event.get("Properties");
            let get = |k: &str| {
                props
                    .and_then(|p| p.get(k))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            };
            routes.push((get("Method").to_uppercase(), get("Path")));
        }
    }
    routes.sort();
    Ok(routes)
}

/// The routes this gateway serves, in the same form.
pub fn served_routes() -> Vec<(String, String)> {
    let mut served: Vec<(String, String)> = routes::ROUTES
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .chain(std::iter::once(("ANY".to_owned(), "$default".to_owned())))
        .chain(std::iter::once((
            "OPTIONS".to_owned(),
            "/{proxy+}".to_owned(),
        )))
        .collect();
    served.sort();
    served
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_describes_exactly_the_routes_of_the_template() {
        let template = include_str!("../../../template.yaml");
        let mut declared = template_routes(template).unwrap();
        declared.retain(|(_, path)| path != "$default" && path != "/{proxy+}");
        assert_eq!(openapi_routes(OPENAPI).unwrap(), declared);
    }

    #[test]
    fn invocations_get_the_deadline_of_the_templates_timeout() {
        let doc: serde_norway::Value =
            serde_norway::from_str(include_str!("../../../template.yaml")).unwrap();
        assert_eq!(
            doc["Globals"]["Function"]["Timeout"].as_u64(),
            Some(LAMBDA_TIMEOUT.as_secs())
        );
    }

    #[test]
    fn the_local_gateway_serves_exactly_the_routes_of_the_template() {
        let template = include_str!("../../../template.yaml");
        assert_eq!(template_routes(template).unwrap(), served_routes());
    }
}
