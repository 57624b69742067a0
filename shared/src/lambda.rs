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

    /// The route label `handle` logs and counts `req` under (a panic's 500 is too).
    fn route(&self, req: &Request) -> &'static str;
}

/// Runs `handler` on the Lambda runtime, with metrics under the `Function` dimension `name`.
pub async fn run<H: Handler>(name: &'static str, handler: H) -> Result<(), lambda_http::Error> {
    let metrics = crate::telemetry::emf::init(name);
    crate::telemetry::install_panic_hook();
    let handler = Arc::new(handler);
    lambda_http::run(service_fn(move |req: Request| {
        let handler = Arc::clone(&handler);
        async move {
            let request_id = crate::api::request_id(&req);
            let response = answer(handler, req).await;
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
pub async fn answer<H: Handler>(handler: Arc<H>, req: Request) -> Response<Body> {
    let started = Instant::now();
    let request_id = crate::api::request_id(&req);
    let route = handler.route(&req);
    match tokio::spawn(async move { handler.handle(req).await }).await {
        Ok(response) => response,
        Err(_) => {
            let failed = async {
                crate::api::outcome::record_route(route);
                crate::api::outcome::finish(
                    route,
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

        fn route(&self, _: &Request) -> &'static str {
            "POST /registration"
        }
    }

    #[test]
    fn a_panicking_handler_is_answered_500_internal_error_and_counted_under_its_route() {
        let (lines, subscriber) =
            crate::telemetry::capture::subscriber("info", crate::telemetry::Format::Json);
        let _default = tracing::subscriber::set_default(subscriber);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let response = runtime.block_on(answer(Arc::new(Panics), Request::default()));
        assert_eq!(response.status(), 500);
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(body["code"], 500);
        assert_eq!(body["data"]["error"], "INTERNAL_ERROR", "{body}");
        let text = lines.text();
        let failed: serde_json::Value = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|l| l["message"] == "request failed")
            .unwrap_or_else(|| panic!("no request failed line in {text}"));
        assert_eq!(failed["route"], "POST /registration", "{failed}");
        assert_eq!(failed["span"]["route"], "POST /registration", "{failed}");
        assert_eq!(failed["outcome"], "INTERNAL_ERROR", "{failed}");
    }
}
