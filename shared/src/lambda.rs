//! The Lambda loop every function's `main` runs: one handler built at cold start (or, when a
//! service it needs is unavailable then, by a later request: [`prepare`]), its EMF
//! metrics flushed at the end of every invocation. Handlers never fail (errors are designed
//! responses, and a panic is answered 500), so the loop's error type is `Infallible`.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// Why a function's handler could not be built at a cold start.
#[derive(Debug)]
pub enum BuildError {
    /// A service it needs was unavailable (Secrets Manager throttled, failing or out of
    /// reach): a later try may succeed.
    Unavailable(anyhow::Error),
    /// Its configuration is wrong: no retry helps, and the cold start fails loudly.
    Invalid(anyhow::Error),
}

impl From<crate::activation::settings::SettingsError> for BuildError {
    fn from(error: crate::activation::settings::SettingsError) -> Self {
        use crate::activation::settings::SettingsError;
        match error {
            SettingsError::Unavailable(_) => Self::Unavailable(error.into()),
            SettingsError::Invalid(_) => Self::Invalid(error.into()),
        }
    }
}

/// A rebuild of the handler in a request waits this long at most before the request is
/// answered 503.
const REBUILD_LIMIT: Duration = Duration::from_secs(3);

/// After a failed try to build the handler, requests are answered 503 for this long before the
/// next try.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// The answer while a service the handler needs is unavailable.
const UNAVAILABLE: crate::api::ApiError = crate::api::ApiError::ServiceUnavailable {
    retry_after_seconds: 1,
};

/// The handler `build` makes, built now, at the cold start. If a service it needs is
/// unavailable, the cold start still completes: requests are answered 503
/// `SERVICE_UNAVAILABLE` with `Retry-After` (counted and logged under their route, by `route`),
/// and one arriving [`RETRY_PAUSE`] or more after the last failed try tries again (for at most
/// [`REBUILD_LIMIT`]); the first try to succeed builds the handler, which is kept. Failing the
/// cold start instead would give every client API Gateway's bare 500 until the service came
/// back. A configuration problem fails the cold start.
pub async fn prepare<H, F, Fut>(
    route: fn(&Request) -> &'static str,
    build: F,
) -> Result<Prepared<H, F>, lambda_http::Error>
where
    H: Handler,
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<H, BuildError>> + Send,
{
    match build().await {
        Ok(handler) => Ok(Prepared::Ready(handler)),
        Err(BuildError::Invalid(error)) => Err(format!("{error:#}").into()),
        Err(BuildError::Unavailable(error)) => {
            tracing::error!(
                error = %format!("{error:#}"),
                "cold start without the function's settings: requests are answered 503 and \
                 try again"
            );
            Ok(Prepared::Pending {
                built: tokio::sync::OnceCell::new(),
                build,
                route,
                failed_at: std::sync::Mutex::new(tokio::time::Instant::now()),
            })
        }
    }
}

/// A handler built at the cold start, or still to be built ([`prepare`]).
pub enum Prepared<H, F> {
    Ready(H),
    Pending {
        built: tokio::sync::OnceCell<H>,
        build: F,
        route: fn(&Request) -> &'static str,
        /// When the last try failed: for [`RETRY_PAUSE`] after it, requests are answered 503
        /// without another (a throttled Secrets Manager is not called by every request).
        failed_at: std::sync::Mutex<tokio::time::Instant>,
    },
}

impl<H, F, Fut> Handler for Prepared<H, F>
where
    H: Handler,
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<H, BuildError>> + Send,
{
    #[allow(clippy::manual_async_fn)]
    fn handle(&self, req: Request) -> impl Future<Output = Response<Body>> + Send {
        async move {
            let (built, build, failed_at) = match self {
                Self::Ready(handler) => return handler.handle(req).await,
                Self::Pending {
                    built,
                    build,
                    failed_at,
                    ..
                } => (built, build, failed_at),
            };
            if let Some(handler) = built.get() {
                return handler.handle(req).await;
            }
            let started = Instant::now();
            let now = tokio::time::Instant::now();
            let paused = failed_at.lock().is_ok_and(|at| now < *at + RETRY_PAUSE);
            // Within the pause, the request's own line says enough: a line per request more
            // would double the log through an outage. A try that fails logs why.
            let (error, answer) = if paused {
                (None, UNAVAILABLE)
            } else {
                let attempt =
                    tokio::time::timeout(REBUILD_LIMIT, built.get_or_try_init(build)).await;
                let failed = match attempt {
                    Ok(Ok(handler)) => {
                        tracing::info!(
                            load_ms = now.elapsed().as_secs_f64() * 1000.0,
                            "the function's settings loaded"
                        );
                        return handler.handle(req).await;
                    }
                    Ok(Err(BuildError::Unavailable(e))) => (Some(format!("{e:#}")), UNAVAILABLE),
                    Err(_) => (
                        Some("no answer within the time allowed".to_owned()),
                        UNAVAILABLE,
                    ),
                    // The configuration went wrong since the cold start: not the client's to
                    // retry.
                    Ok(Err(BuildError::Invalid(e))) => {
                        (Some(format!("{e:#}")), crate::api::ApiError::Internal)
                    }
                };
                if let Ok(mut at) = failed_at.lock() {
                    *at = tokio::time::Instant::now();
                }
                failed
            };
            let request_id = crate::api::request_id(&req);
            let route = self.route(&req);
            let unavailable = async {
                crate::api::outcome::record_route(route);
                if let Some(error) = error {
                    tracing::warn!(error, "the function's settings could not be loaded");
                }
                crate::api::outcome::finish(route, &request_id, None, started, Err(answer))
            };
            crate::api::outcome::in_request_span(&request_id, unavailable).await
        }
    }

    fn route(&self, req: &Request) -> &'static str {
        match self {
            Self::Ready(handler) => handler.route(req),
            Self::Pending { built, route, .. } => match built.get() {
                Some(handler) => handler.route(req),
                None => route(req),
            },
        }
    }
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

    /// Answers 200 "built", counted under "GET /built".
    struct Built;

    impl Handler for Built {
        #[allow(clippy::manual_async_fn)]
        fn handle(&self, _: Request) -> impl Future<Output = Response<Body>> + Send {
            async { Response::new(Body::from("built")) }
        }

        fn route(&self, _: &Request) -> &'static str {
            "GET /built"
        }
    }

    fn not_yet(_: &Request) -> &'static str {
        "GET /not-yet"
    }

    /// `build` failing with the `failures` given in turn, then succeeding; with its count of calls.
    fn builder(
        failures: Vec<fn() -> BuildError>,
    ) -> (
        Arc<std::sync::atomic::AtomicUsize>,
        impl Fn() -> std::pin::Pin<Box<dyn Future<Output = Result<Built, BuildError>> + Send>>
        + Send
        + Sync
        + 'static,
    ) {
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = calls.clone();
        let build = move || {
            let call = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let outcome = failures
                .get(call)
                .map_or(Ok(Built), |failure| Err(failure()));
            Box::pin(async move { outcome }) as std::pin::Pin<Box<dyn Future<Output = _> + Send>>
        };
        (calls, build)
    }

    fn unavailable() -> BuildError {
        BuildError::Unavailable(anyhow::anyhow!("ThrottlingException"))
    }

    fn invalid() -> BuildError {
        BuildError::Invalid(anyhow::anyhow!("ACTIVATION_CODE_SECRET is too short"))
    }

    /// A service the handler needs is unavailable at the cold start: the cold start completes,
    /// and requests are answered 503 `SERVICE_UNAVAILABLE` with `Retry-After` (under their
    /// route): within a second of a failed try without another, after it by trying again. The
    /// handler a try builds answers, and is kept. A configuration that turned bad meanwhile is
    /// a 500; one bad at the cold start fails it.
    #[tokio::test(start_paused = true)]
    async fn a_handler_whose_service_was_unavailable_at_the_cold_start_is_built_by_a_request() {
        let (lines, subscriber) =
            crate::telemetry::capture::subscriber("info", crate::telemetry::Format::Json);
        let _default = tracing::subscriber::set_default(subscriber);
        let (calls, build) = builder(vec![unavailable, unavailable, invalid]);
        let function = Arc::new(
            prepare(not_yet, build)
                .await
                .expect("the cold start completes"),
        );
        let calls = move || calls.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(calls(), 1);
        let ask = || async {
            let response = answer(function.clone(), Request::default()).await;
            let retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let body = String::from_utf8(response.body().to_vec()).unwrap();
            (response.status().as_u16(), retry_after, body)
        };
        let pause = || tokio::time::advance(RETRY_PAUSE);
        let mut answers = Vec::new();
        // Right after the cold start's failed try: 503, no try.
        answers.push((ask().await, calls()));
        pause().await;
        answers.push((ask().await, calls()));
        pause().await;
        answers.push((ask().await, calls()));
        pause().await;
        answers.push((ask().await, calls()));
        answers.push((ask().await, calls()));
        let ((status, retry_after, body), tries) = &answers[0];
        assert_eq!(
            (*status, retry_after.as_deref(), *tries),
            (503, Some("1"), 1)
        );
        assert!(body.contains("SERVICE_UNAVAILABLE"), "{answers:?}");
        let ((status, retry_after, body), tries) = &answers[1];
        assert_eq!(
            (*status, retry_after.as_deref(), *tries),
            (503, Some("1"), 2)
        );
        assert!(body.contains("SERVICE_UNAVAILABLE"), "{answers:?}");
        let ((status, _, body), tries) = &answers[2];
        assert_eq!((*status, *tries), (500, 3));
        assert!(body.contains("INTERNAL_ERROR"), "{answers:?}");
        // Built by the fourth try, then kept.
        assert_eq!(answers[3], ((200, None, "built".to_owned()), 4));
        assert_eq!(answers[4], ((200, None, "built".to_owned()), 4));
        assert_eq!(function.route(&Request::default()), "GET /built");
        let text = lines.text();
        let failed: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|l| l["message"] == "request failed")
            .collect();
        assert_eq!(failed.len(), 3, "{text}");
        assert_eq!(failed[0]["route"], "GET /not-yet", "{text}");
        assert_eq!(failed[0]["outcome"], "SERVICE_UNAVAILABLE", "{text}");
        assert!(text.contains("ThrottlingException"), "{text}");
        // A line on each try that failed (the second and third requests), none for a request
        // within the pause (the first): an outage does not double the log.
        let tries_failed = text
            .lines()
            .filter(|l| l.contains("the function's settings could not be loaded"))
            .count();
        assert_eq!(tries_failed, 2, "{text}");
        assert!(text.contains("the function's settings loaded"), "{text}");

        let (calls, build) = builder(vec![invalid]);
        assert!(
            prepare(not_yet, build).await.is_err(),
            "a bad configuration fails the cold start"
        );
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        let (_, build) = builder(vec![]);
        assert!(matches!(
            prepare(not_yet, build).await,
            Ok(Prepared::Ready(Built))
        ));
    }

    /// A try that does not finish in time (Secrets Manager not answering) does not hold the
    /// request: 503 after `REBUILD_LIMIT`. The abandoned try leaves nothing behind: a later
    /// one builds the handler.
    #[tokio::test(start_paused = true)]
    async fn a_rebuild_that_hangs_is_answered_503_in_time() {
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = calls.clone();
        let build = move || {
            let call = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                match call {
                    0 => Err(unavailable()),
                    1 => std::future::pending::<Result<Built, BuildError>>().await,
                    _ => Ok(Built),
                }
            }
        };
        let function = Arc::new(prepare(not_yet, build).await.unwrap());
        tokio::time::advance(RETRY_PAUSE).await;
        let started = tokio::time::Instant::now();
        let response = answer(function.clone(), Request::default()).await;
        assert_eq!(response.status(), 503);
        assert_eq!(started.elapsed(), REBUILD_LIMIT);
        tokio::time::advance(RETRY_PAUSE).await;
        let response = answer(function, Request::default()).await;
        assert_eq!(response.status(), 200);
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);
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
