//! The Lambda loop every function's `main` runs: one handler built at cold start, its EMF
//! metrics flushed at the end of every invocation. Handlers never fail (errors are designed
//! responses, and a panic is answered 500), so the loop's error type is `Infallible`.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

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
            let response = answer(handler, name, req).await;
            crate::telemetry::emf::flush(metrics, &request_id);
            Ok::<_, Infallible>(response)
        }
    }))
    .await
}

/// The handler's response. If it panicked (a bug), the request is answered like any other
/// unexpected failure (500 `INTERNAL_ERROR` with its request id), logged and counted, and its
/// metrics are flushed with it; left to the runtime, the panic would become the gateway's bare
/// 500, with no log line in the function's format and this request's metrics flushed with the
/// next one's.
pub async fn answer<H: Handler>(
    handler: Arc<H>,
    function: &'static str,
    req: Request,
) -> Response<Body> {
    let started = Instant::now();
    let request_id = crate::api::request_id(&req);
    match tokio::spawn(async move { handler.handle(req).await }).await {
        Ok(response) => response,
        Err(_) => {
            let failed = async {
                crate::api::outcome::finish(
                    function,
                    &request_id,
                    None,
                    started,
                    Err(crate::api::ApiError::Internal),
                )
            };
            crate::api::outcome::in_request_span(&request_id, failed).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Panics;

    impl Handler for Panics {
        #[allow(clippy::manual_async_fn)]
        fn handle(&self, _: Request) -> impl Future<Output = Response<Body>> + Send {
            async { panic!("a bug") }
        }
    }

    #[test]
    fn a_panicking_handler_is_answered_500_internal_error() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let response = runtime.block_on(answer(Arc::new(Panics), "test", Request::default()));
        assert_eq!(response.status(), 500);
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(body["code"], 500);
        assert_eq!(body["data"]["error"], "INTERNAL_ERROR", "{body}");
    }
}
