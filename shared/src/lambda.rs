//! The Lambda loop every function's `main` runs: one handler built at cold start, one EMF
//! metrics document flushed per invocation. Handlers never fail (errors are designed
//! responses), so the loop's error type is `Infallible`.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use lambda_http::{Body, Request, Response, service_fn};

/// A function's request handler (`Categorization`, `Registration`, `Activation`).
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, req: Request) -> impl Future<Output = Response<Body>> + Send;
}

/// Runs `handler` on the Lambda runtime, with metrics under the `Function` dimension `name`.
pub async fn run<H: Handler>(name: &'static str, handler: H) -> Result<(), lambda_http::Error> {
    let metrics = crate::telemetry::emf::init(name);
    let handler = Arc::new(handler);
    lambda_http::run(service_fn(move |req: Request| {
        let handler = Arc::clone(&handler);
        async move {
            let request_id = crate::api::request_id(&req);
            let response = handler.handle(req).await;
            crate::telemetry::emf::flush(metrics, &request_id);
            Ok::<_, Infallible>(response)
        }
    }))
    .await
}
