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
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .without_time()
        .with_ansi(false)
        .with_writer(writer)
        .try_init();
}
