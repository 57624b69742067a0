//! Logging (CONVENTIONS §7): lines with the request's ids, never personal data, following
//! Lambda's log controls: JSON unless `AWS_LAMBDA_LOG_FORMAT` is `Text`; the level from
//! `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else `info`.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Installs the subscriber once; later calls are no-ops (tests call it freely).
pub fn init() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    let format = std::env::var("AWS_LAMBDA_LOG_FORMAT").unwrap_or_default();
    let _ = subscriber(std::io::stdout, &level, Format::from_env_value(&format)).try_init();
}

/// Makes a panic one log line in the function's format (`shared::lambda::run` installs it:
/// the Lambda functions, not the local gateway or tests, which keep the default hook).
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|m| (*m).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        log_panic(&location, &message, !tracing::Span::current().is_none());
    }));
}

/// Within a request (its span gives the ids), where it happened but not the message: an
/// `unwrap` of an error or an `expect` there can carry request data. Outside one (start-up,
/// the runtime) the message too: it carries none, and says what went wrong.
fn log_panic(location: &str, message: &str, in_request: bool) {
    if in_request {
        tracing::error!(
            location,
            "panicked (the message is not logged: it may hold request data)"
        );
    } else {
        tracing::error!(location, panic_message = message, "panicked");
    }
}

/// The line format Lambda's `LoggingConfig.LogFormat` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// One JSON object per line with `timestamp` (RFC 3339) and `level`: Lambda filters JSON
    /// application logs by `level`, but takes a line without a valid `timestamp` for `INFO`.
    Json,
    /// Plain lines (CloudWatch adds the time).
    Text,
}

impl Format {
    /// `AWS_LAMBDA_LOG_FORMAT`: `Text` (any case) is text; anything else, or nothing, JSON.
    fn from_env_value(value: &str) -> Self {
        if value.eq_ignore_ascii_case("text") {
            Format::Text
        } else {
            Format::Json
        }
    }
}

/// Crates whose debug/trace output would carry request bodies, signed headers or DynamoDB
/// items (personal data, hashes): held at `warn` whatever level is asked for. Each entry is a
/// prefix of targets (as `Targets` matches them): `aws_` takes in every SDK and smithy crate
/// (`aws_sigv4` logs the canonical request at trace), `lambda_` the runtime's crates,
/// `hyper` also `hyper_util`, `metrics` the EMF collector.
const QUIET: [&str; 7] = [
    "aws_", "lambda_", "hyper", "h2", "rustls", "tower", "metrics",
];

/// `asked` is a level (Lambda's `TRACE` … `FATAL`, any case) or `RUST_LOG`-style
/// `target=level` directives (targets not named get `info` unless a bare level is given);
/// unreadable, it is `info`. The `QUIET` crates, and every target under them, never log below
/// `warn`, nor below the level asked for. (`Targets` rather than `EnvFilter`: the same
/// directives without span and field filters, so no regex engine in the binaries.)
fn filter(asked: &str) -> Targets {
    let asked = asked.to_ascii_lowercase();
    // `LevelFilter` would read "" as `error`: each level must be written out.
    let level = |text: &str| match text {
        "" => None,
        "fatal" => Some(LevelFilter::ERROR),
        text => text.parse::<LevelFilter>().ok(),
    };
    let mut default = None;
    let mut directives = Vec::new();
    for part in asked.split(',') {
        match part.split_once('=') {
            None => match level(part) {
                Some(level) => default = Some(level),
                None => return filter("info"),
            },
            Some((target, text)) => match level(text) {
                Some(level) if !target.is_empty() => directives.push((target.to_owned(), level)),
                _ => return filter("info"),
            },
        }
    }
    let default = default.unwrap_or(LevelFilter::INFO);
    let quiet = default.min(LevelFilter::WARN);
    // A directive for a target inside a quiet crate (`hyper_util::client=debug`) would be more
    // specific than the crate's cap and win: such directives are capped too.
    for (target, level) in &mut directives {
        if QUIET.iter().any(|q| target.starts_with(q)) {
            *level = (*level).min(quiet);
        }
    }
    Targets::new()
        .with_default(default)
        .with_targets(directives)
        .with_targets(QUIET.map(|target| (target, quiet)))
}

/// The JSON subscriber writing elsewhere (the tests capture every line to check privacy).
pub fn init_with_writer<W>(writer: W, level: &str)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let _ = subscriber(writer, level, Format::Json).try_init();
}

fn subscriber<W>(
    writer: W,
    level: &str,
    format: Format,
) -> impl tracing::Subscriber + Send + Sync + 'static
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    // The builder's own level filter (INFO by default) would sit under `filter` and hide
    // DEBUG and TRACE: open it fully and let `filter` decide.
    let builder = tracing_subscriber::fmt()
        .with_max_level(LevelFilter::TRACE)
        .with_target(false)
        .with_ansi(false)
        .with_writer(writer);
    let lines: Box<dyn tracing::Subscriber + Send + Sync> = match format {
        Format::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .finish(),
        ),
        Format::Text => Box::new(builder.without_time().finish()),
    };
    lines.with(filter(level))
}

/// CloudWatch Embedded Metric Format: the handlers record with the `metrics` macros (no-ops
/// where nothing is installed: the local gateway, tests); a Lambda installs the collector at
/// cold start and flushes it at the end of every invocation (one document per dimension set).
pub mod emf {
    use std::sync::atomic::{AtomicBool, Ordering};

    pub use metrics_cloudwatch_embedded::Collector;

    /// Every counter the functions record (`Count` in the documents).
    pub const COUNTERS: [&str; 12] = [
        "ColdStart",
        "DynamoDbRequests",
        "DynamoDbRetries",
        "RegistrationsCreated",
        "RegistrationsRejected",
        "IdempotentReplays",
        "ActivationsSucceeded",
        "ActivationsFailed",
        "ActivationCodesResent",
        "ResendsRefused",
        "ActivationDeliveriesFailed",
        "Requests",
    ];

    /// The counters recorded with a `Code` label (the contract's stable code of the answer):
    /// their documents carry the dimensions `Function` and `Code`, the others `Function`.
    pub const BY_CODE: [&str; 4] = [
        "RegistrationsRejected",
        "ActivationsFailed",
        "ResendsRefused",
        "Requests",
    ];

    /// Every histogram the functions record (`Milliseconds`).
    pub const HISTOGRAMS: [&str; 1] = ["Argon2Time"];

    /// Installs the collector (namespace `OnboardingApi`, dimension `Function`), then gives
    /// the metrics their units: a description is kept by the recorder installed when it is
    /// made, so made before, it would go to the no-op recorder and the documents would carry
    /// no `Unit`.
    pub fn init(function: &'static str) -> Option<&'static Collector> {
        let collector = metrics_cloudwatch_embedded::Builder::new()
            .cloudwatch_namespace("OnboardingApi")
            .with_dimension("Function", function)
            .init()
            .ok()?;
        describe();
        Some(collector)
    }

    fn describe() {
        for name in HISTOGRAMS {
            metrics::describe_histogram!(name, metrics::Unit::Milliseconds, "");
        }
        for name in COUNTERS {
            metrics::describe_counter!(name, metrics::Unit::Count, "");
        }
    }

    static WARM: AtomicBool = AtomicBool::new(false);

    /// Ends an invocation: counts a cold start once, then writes the invocation's metrics.
    pub fn flush(collector: Option<&'static Collector>, request_id: &str) {
        flush_to(collector, request_id, std::io::stdout().lock());
    }

    /// [`flush`] to another writer (the tests read the documents).
    pub fn flush_to(
        collector: Option<&'static Collector>,
        request_id: &str,
        writer: impl std::io::Write,
    ) {
        let Some(collector) = collector else { return };
        if !WARM.swap(true, Ordering::SeqCst) {
            metrics::counter!("ColdStart").increment(1);
        }
        let _ = collector
            .set_property("requestId", request_id.to_owned())
            .flush(writer);
    }
}

/// Log lines captured in memory, in the functions' format, for the tests to read.
#[cfg(test)]
pub(crate) mod capture {
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    pub(crate) struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Lines {
        pub(crate) fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// The subscriber `init` installs, at `level` in `format`, and the lines it writes.
    pub(crate) fn subscriber(
        level: &str,
        format: super::Format,
    ) -> (Lines, impl tracing::Subscriber + Send + Sync + 'static) {
        let lines = Lines::default();
        let out = lines.clone();
        (lines, super::subscriber(move || out.clone(), level, format))
    }
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    /// The lists in [`super::emf`] (which give the metrics their units, and which the template
    /// test holds the dashboard to) are what the code records: every `counter!` and
    /// `histogram!` of the library and the functions names a listed metric, with a `Code`
    /// label exactly when it is in `BY_CODE`, and every listed metric is recorded somewhere.
    #[test]
    fn the_metric_lists_are_the_metrics_the_code_records() {
        fn sources(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    sources(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    out.push(path);
                }
            }
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap();
        let mut files = Vec::new();
        for dir in [
            "shared/src",
            "functions/categorization/src",
            "functions/registration/src",
            "functions/activation/src",
        ] {
            sources(&root.join(dir), &mut files);
        }
        let mut recorded = std::collections::BTreeMap::new();
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap();
            for macro_call in ["counter!(\"", "histogram!(\""] {
                for call in text.split(macro_call).skip(1) {
                    let (name, rest) = call.split_once('"').unwrap();
                    let arguments = rest.split_once(')').map_or(rest, |(args, _)| args);
                    let labelled = arguments.contains("\"Code\" =>");
                    let kind = macro_call.trim_end_matches("!(\"");
                    let earlier = recorded.insert(name.to_owned(), (kind, labelled));
                    assert!(
                        earlier.is_none_or(|e| e == (kind, labelled)),
                        "{name} recorded two ways ({})",
                        file.display()
                    );
                }
            }
        }
        let listed: std::collections::BTreeMap<String, (&str, bool)> = super::emf::COUNTERS
            .iter()
            .map(|name| {
                let coded = super::emf::BY_CODE.contains(name);
                ((*name).to_owned(), ("counter", coded))
            })
            .chain(
                super::emf::HISTOGRAMS
                    .iter()
                    .map(|name| ((*name).to_owned(), ("histogram", false))),
            )
            .collect();
        assert_eq!(recorded, listed, "in {} files", files.len());
    }

    use super::Format;
    use super::capture;

    fn logged(format: Format, level: &str) -> String {
        let (lines, subscriber) = capture::subscriber(level, format);
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(
                request_id = "req-1",
                outcome = "SERVICE_UNAVAILABLE",
                "answered"
            );
            tracing::debug!("a debug line");
            tracing::debug!(target: "hyper_util::client", "a quiet crate's debug line");
        });
        lines.text()
    }

    #[test]
    fn the_installed_subscriber_lets_through_what_the_filter_allows_and_no_more() {
        for format in [Format::Json, Format::Text] {
            let info = logged(format, "info");
            assert_eq!(info.lines().count(), 1, "{info}");
            let debug = logged(format, "debug");
            assert_eq!(debug.lines().count(), 2, "{debug}");
            assert!(debug.contains("a debug line"), "{debug}");
            assert!(!debug.contains("quiet crate"), "{debug}");
            let trace = logged(format, "trace,hyper_util::client=trace");
            assert!(!trace.contains("quiet crate"), "{trace}");
        }
    }

    #[test]
    fn json_lines_carry_the_level_and_an_rfc3339_timestamp_lambda_can_filter_on() {
        let text = logged(Format::Json, "info");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 1, "{text}");
        assert_eq!(lines[0]["level"], "WARN");
        assert_eq!(lines[0]["request_id"], "req-1");
        assert_eq!(lines[0]["message"], "answered");
        let timestamp = lines[0]["timestamp"].as_str().expect("a timestamp");
        chrono::DateTime::parse_from_rfc3339(timestamp).expect("RFC 3339");
    }

    #[test]
    fn lines_within_a_request_carry_its_ids_at_any_level_asked_for() {
        for asked in ["warn", "info", "trace"] {
            let (lines, subscriber) = capture::subscriber(asked, Format::Json);
            let _default = tracing::subscriber::set_default(subscriber);
            let work = async {
                crate::api::outcome::record_route("POST /registration");
                crate::api::outcome::record_tenant("t1");
                tracing::warn!("storage unavailable");
            };
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap()
                .block_on(crate::api::outcome::in_request_span("req-9", work));
            let text = lines.text();
            let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
            assert_eq!(line["message"], "storage unavailable", "{asked}: {text}");
            assert_eq!(line["span"]["request_id"], "req-9", "{asked}: {text}");
            assert_eq!(line["span"]["route"], "POST /registration", "{asked}");
            assert_eq!(line["span"]["tenant_id"], "t1", "{asked}");
        }
    }

    #[test]
    fn a_panic_in_a_request_is_logged_without_its_message_and_outside_one_with_it() {
        let (lines, subscriber) = capture::subscriber("info", Format::Json);
        let _default = tracing::subscriber::set_default(subscriber);
        let in_request = async {
            super::log_panic("shared/src/x.rs:1:2", "secret@example.com", true);
        };
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(crate::api::outcome::in_request_span("req-p", in_request));
        super::log_panic("shared/src/config.rs:3:4", "TABLE_NAME is not set", false);
        let text = lines.text();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0]["span"]["request_id"], "req-p", "{text}");
        assert_eq!(lines[0]["location"], "shared/src/x.rs:1:2");
        assert!(!text.contains("secret@example.com"), "{text}");
        assert_eq!(lines[1]["message"], "panicked", "{text}");
        assert_eq!(lines[1]["location"], "shared/src/config.rs:3:4");
        assert!(lines[1]["span"].is_null(), "{text}");
        assert!(text.contains("TABLE_NAME is not set"), "{text}");
    }

    #[test]
    fn text_lines_when_lambda_asks_for_text() {
        assert_eq!(Format::from_env_value("Text"), Format::Text);
        assert_eq!(Format::from_env_value("JSON"), Format::Json);
        assert_eq!(Format::from_env_value(""), Format::Json);
        let text = logged(Format::Text, "info");
        assert_eq!(text.lines().count(), 1, "{text}");
        let line = text.lines().next().unwrap();
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_err(),
            "{line}"
        );
        assert!(line.contains("WARN") && line.contains("answered"), "{line}");
        assert!(line.contains("request_id=\"req-1\""), "{line}");
    }

    #[test]
    fn the_filter_follows_the_asked_level_and_keeps_quiet_crates_at_warn_at_most() {
        use Level as L;
        // (asked, target, level, enabled)
        let cases = [
            ("info", "shared::api", L::INFO, true),
            ("info", "shared::api", L::DEBUG, false),
            ("INFO", "aws_config::loader", L::INFO, false),
            ("info", "aws_config::loader", L::WARN, true),
            ("debug", "registration", L::DEBUG, true),
            ("debug", "hyper_util::client", L::DEBUG, false),
            ("trace", "aws_smithy_runtime", L::INFO, false),
            ("trace", "aws_sigv4::http_request::sign", L::TRACE, false),
            ("debug", "aws_sdk_secretsmanager::client", L::DEBUG, false),
            ("debug", "aws_smithy_http::body", L::DEBUG, false),
            (
                "trace",
                "metrics_cloudwatch_embedded::collector",
                L::INFO,
                false,
            ),
            ("trace", "lambda_runtime_api_client", L::DEBUG, false),
            ("trace", "lambda_runtime_api_client", L::WARN, true),
            ("error", "shared", L::WARN, false),
            ("error", "aws_config", L::WARN, false),
            ("ERROR", "aws_config", L::ERROR, true),
            ("FATAL", "shared", L::ERROR, true),
            ("FATAL", "shared", L::WARN, false),
            ("no such level!", "shared", L::INFO, true),
            ("no such level!", "shared", L::DEBUG, false),
            ("shared=loud", "shared", L::INFO, true),
            ("=debug", "shared", L::DEBUG, false),
            ("shared=FATAL", "shared", L::ERROR, true),
            ("shared=FATAL", "shared", L::WARN, false),
            ("", "shared", L::INFO, true),
            ("shared=debug,hyper=trace", "shared::store", L::DEBUG, true),
            ("shared=debug,hyper=trace", "hyper", L::INFO, false),
            ("shared=debug,hyper=trace", "hyper", L::WARN, true),
            ("shared=debug,hyper=trace", "activation", L::INFO, true),
            ("shared=debug,hyper=trace", "activation", L::DEBUG, false),
            (
                "hyper_util::client=debug",
                "hyper_util::client::pool",
                L::DEBUG,
                false,
            ),
            (
                "hyper_util::client=debug",
                "hyper_util::client::pool",
                L::WARN,
                true,
            ),
            (
                "aws_smithy_runtime::client=trace",
                "aws_smithy_runtime::client",
                L::INFO,
                false,
            ),
            (
                "error,aws_smithy_runtime::client=trace",
                "aws_smithy_runtime::client",
                L::WARN,
                false,
            ),
        ];
        for (asked, target, level, enabled) in cases {
            assert_eq!(
                super::filter(asked).would_enable(target, &level),
                enabled,
                "asked {asked:?}: {target} at {level}"
            );
        }
    }

    #[test]
    fn an_invocation_flushes_its_business_metrics_with_units_and_one_cold_start() {
        let collector = super::emf::init("registration").expect("first recorder in this binary");
        crate::api::outcome::finish(
            "POST /registration",
            "req-emf",
            Some("t1"),
            std::time::Instant::now(),
            Err(crate::api::ApiError::EmailAlreadyExists),
        );
        let replayed = lambda_http::Response::builder()
            .status(201)
            .header("idempotent-replayed", "true")
            .body(lambda_http::Body::Empty)
            .unwrap();
        crate::api::outcome::finish(
            "POST /registration",
            "req-emf",
            Some("t1"),
            std::time::Instant::now(),
            Ok(replayed),
        );
        struct Refusing;
        #[async_trait::async_trait]
        impl crate::activation::delivery::CodeSender for Refusing {
            async fn send(
                &self,
                _: &crate::activation::delivery::ActivationMessage,
            ) -> anyhow::Result<()> {
                anyhow::bail!("MessageRejected")
            }
        }
        let message = crate::activation::delivery::ActivationMessage {
            to: "someone@example.com".into(),
            tenant: crate::domain::TenantId::parse("t1").unwrap(),
            customer_id: "c-1".into(),
            code: crate::activation::code::ActivationCode::generate().unwrap(),
            expires_at: chrono::Utc::now(),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let sent = runtime.block_on(crate::activation::delivery::deliver(
            &Refusing, &message, "req-emf", None,
        ));
        assert!(!sent);
        let password = crate::domain::Password::parse("Emf-metrics-passw0rd!", &[]).unwrap();
        runtime.block_on(crate::password::hash(password)).unwrap();
        let mut out = Vec::new();
        super::emf::flush_to(Some(collector), "req-emf", &mut out);
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
        // A replay is counted as one, not as a second registration created.
        assert!(text.contains("IdempotentReplays"), "{text}");
        assert!(!text.contains("RegistrationsCreated"), "{text}");
        assert!(text.contains("ActivationDeliveriesFailed"), "{text}");
        // Every metric carries its unit: the hash time in milliseconds, counters as counts.
        let units: std::collections::BTreeMap<String, String> = docs
            .iter()
            .flat_map(|d| {
                d["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                    .as_array()
                    .unwrap()
                    .clone()
            })
            .map(|m| {
                let name = m["Name"].as_str().unwrap().to_owned();
                let unit = m["Unit"].as_str().unwrap_or("none").to_owned();
                (name, unit)
            })
            .collect();
        assert_eq!(units["Argon2Time"], "Milliseconds", "{text}");
        for counter in [
            "ColdStart",
            "RegistrationsRejected",
            "ActivationDeliveriesFailed",
        ] {
            assert_eq!(units[counter], "Count", "{counter} in {text}");
        }
        // The first invocation of the process counts the cold start, the next one does not.
        crate::api::outcome::finish(
            "POST /registration",
            "req-emf-2",
            Some("t1"),
            std::time::Instant::now(),
            Err(crate::api::ApiError::EmailAlreadyExists),
        );
        let mut out = Vec::new();
        super::emf::flush_to(Some(collector), "req-emf-2", &mut out);
        let second = String::from_utf8(out).unwrap();
        assert!(second.contains("RegistrationsRejected"), "{second}");
        assert!(second.contains("\"requestId\":\"req-emf-2\""), "{second}");
        assert!(!second.contains("ColdStart"), "{second}");
    }
}
