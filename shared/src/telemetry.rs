//! Logging (CONVENTIONS §7): JSON lines with the request's ids, never personal data. The level
//! follows Lambda's log controls (`AWS_LAMBDA_LOG_LEVEL`), else `RUST_LOG`, else `info`.

use tracing_subscriber::EnvFilter;

/// Installs the JSON subscriber once; later calls are no-ops (tests call it freely).
pub fn init() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    init_with_writer(std::io::stdout, &level);
}

/// Crates whose debug/trace output would carry request bodies or DynamoDB items (personal
/// data, hashes): held at `warn` whatever level is asked for.
const QUIET: &str = "lambda_runtime=warn,lambda_http=warn,aws_smithy_runtime=warn,\
aws_smithy_runtime_api=warn,aws_smithy_http_client=warn,aws_sdk_dynamodb=warn,aws_sdk_sesv2=warn,\
aws_config=warn,aws_runtime=warn,hyper=warn,hyper_util=warn,h2=warn,rustls=warn,tower=warn";

/// The same subscriber writing elsewhere (the tests capture every line to check privacy).
pub fn init_with_writer<W>(writer: W, level: &str)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let level = level.to_lowercase();
    let filter = EnvFilter::try_new(format!("{level},{QUIET}"))
        .unwrap_or_else(|_| EnvFilter::new(format!("info,{QUIET}")));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .without_time()
        .with_ansi(false)
        .with_writer(writer)
        .try_init();
}

/// CloudWatch Embedded Metric Format: the handlers record with the `metrics` macros (no-ops
/// where nothing is installed: the local gateway, tests); a Lambda installs the collector at
/// cold start and flushes one EMF document per invocation.
pub mod emf {
    use std::sync::atomic::{AtomicBool, Ordering};

    pub use metrics_cloudwatch_embedded::Collector;

    /// Installs the collector (namespace `OnboardingApi`, dimension `Function`).
    pub fn init(function: &'static str) -> Option<&'static Collector> {
        metrics::describe_histogram!(
            "Argon2Time",
            metrics::Unit::Milliseconds,
            "Argon2id hash time"
        );
        metrics_cloudwatch_embedded::Builder::new()
            .cloudwatch_namespace("OnboardingApi")
            .with_dimension("Function", function)
            .init()
            .ok()
    }

    static WARM: AtomicBool = AtomicBool::new(false);

    /// Ends an invocation: counts a cold start once, then writes the invocation's metrics.
    pub fn flush(collector: Option<&'static Collector>, request_id: &str) {
        let Some(collector) = collector else { return };
        if !WARM.swap(true, Ordering::SeqCst) {
            metrics::counter!("ColdStart").increment(1);
        }
        let _ = collector
            .set_property("requestId", request_id.to_owned())
            .flush(std::io::stdout().lock());
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_invocation_flushes_one_emf_document_with_its_business_metrics() {
        let collector = super::emf::init("registration").expect("first recorder in this binary");
        crate::api::outcome::finish(
            "POST /registration",
            "req-emf",
            Some("t1"),
            std::time::Instant::now(),
            Err(crate::api::ApiError::EmailAlreadyExists),
        );
        metrics::counter!("DynamoDbRetries").increment(2);
        let mut out = Vec::new();
        collector
            .set_property("requestId", "req-emf")
            .flush(&mut out)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        let docs: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let rejected = docs
            .iter()
            .find(|d| d.get("RegistrationsRejected").is_some())
            .unwrap_or_else(|| panic!("no RegistrationsRejected in {text}"));
        assert_eq!(rejected["Code"], "EMAIL_ALREADY_EXISTS");
        assert_eq!(rejected["Function"], "registration");
        assert_eq!(
            rejected["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "OnboardingApi"
        );
        assert_eq!(rejected["requestId"], "req-emf");
        assert!(text.contains("DynamoDbRetries"));
    }
}
