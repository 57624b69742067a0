//! Activation (§4): `POST /{customerId}/activation` and `POST /{customerId}/activation/code`.
//! Until the activation issue lands, both routes authenticate the caller exactly as they will
//! and then answer 501 `NOT_IMPLEMENTED`.

use std::time::Instant;

use lambda_http::{Body, Request, Response};
use shared::api::auth::{self, scopes};
use shared::api::outcome::finish;
use shared::api::routes::{self, Function};
use shared::api::{ApiError, request_id};
use shared::config::Config;

const ROUTE: &str = "POST /{customerId}/activation";

pub struct Activation {
    config: Config,
}

impl Activation {
    pub fn new(config: Config) -> Self {
        Self { config }
    }

    pub async fn handle(&self, req: Request) -> Response<Body> {
        let started = Instant::now();
        let request_id = request_id(&req);
        let result = (|| {
            let (route, _) = routes::resolve(req.method().as_str(), req.uri().path())?;
            if route.function != Function::Activation {
                return Err(ApiError::RouteNotFound);
            }
            auth::caller(&req, &self.config.tenant_claim, scopes::CUSTOMERS_ACTIVATE)?;
            Err(ApiError::NotImplemented)
        })();
        finish(ROUTE, &request_id, None, started, result)
    }
}
