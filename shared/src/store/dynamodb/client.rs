//! The SDK client: configuration from the environment, the trust store, and the interceptor
//! that counts round trips.

use std::time::Duration;

use aws_sdk_dynamodb::Client;

/// Builds the SDK client once per cold start: region and credentials from the environment
/// (the Lambda's role in AWS; `AWS_ENDPOINT_URL_DYNAMODB` points it at moto locally), bounded
/// retries and timeouts so a function answers before the gateway's 30 s limit.
pub async fn client_from_env() -> Client {
    client(&aws_config_from_env().await)
}

/// The DynamoDB client of a loaded configuration, counting its round trips and retries.
pub fn client(aws: &aws_config::SdkConfig) -> Client {
    let config = aws_sdk_dynamodb::config::Builder::from(aws)
        .interceptor(RoundTrips)
        .build();
    Client::from_conf(config)
}

/// Counts every HTTP attempt (`DynamoDbRequests`) and every retry (`DynamoDbRetries`) as EMF
/// metrics of the invocation (no-ops where no metrics recorder is installed).
#[derive(Debug)]
struct RoundTrips;

impl aws_sdk_dynamodb::config::Intercept for RoundTrips {
    fn name(&self) -> &'static str {
        "RoundTrips"
    }

    fn read_before_transmit(
        &self,
        _context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_sdk_dynamodb::config::RuntimeComponents,
        cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        metrics::counter!("DynamoDbRequests").increment(1);
        let attempt = cfg
            .load::<aws_smithy_runtime_api::client::retries::RequestAttempts>()
            .map(|a| a.attempts())
            .unwrap_or(1);
        if attempt > 1 {
            metrics::counter!("DynamoDbRetries").increment(1);
        }
        Ok(())
    }
}

/// Amazon Trust Services roots: every AWS endpoint chains to one of them. Trusting only these
/// spares each cold start the parse of the system's whole CA bundle (measured by `make bench`:
/// ~3 ms of a ~6 ms init). `TLS_TRUST_STORE=native` restores the system store (a proxy or a
/// private CA in front of AWS).
const AMAZON_ROOTS: [&str; 4] = [
    include_str!("../../../certs/Amazon_Root_CA_1.pem"),
    include_str!("../../../certs/Amazon_Root_CA_2.pem"),
    include_str!("../../../certs/Amazon_Root_CA_3.pem"),
    include_str!("../../../certs/Amazon_Root_CA_4.pem"),
];

fn https_client() -> Option<aws_smithy_runtime_api::client::http::SharedHttpClient> {
    use aws_smithy_http_client::tls;
    if std::env::var("TLS_TRUST_STORE").is_ok_and(|v| v == "native") {
        return None;
    }
    let trust = AMAZON_ROOTS
        .iter()
        .fold(tls::TrustStore::empty(), |store, pem| {
            store.with_pem_certificate(pem.as_bytes())
        });
    let context = tls::TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .ok()?;
    Some(
        aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::AwsLc,
            ))
            .tls_context(context)
            .build_https(),
    )
}

/// The shared SDK configuration (DynamoDB and SES clients are built from one load).
pub async fn aws_config_from_env() -> aws_config::SdkConfig {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(3))
        .operation_timeout(Duration::from_secs(8))
        .build();
    let retries = aws_config::retry::RetryConfig::standard().with_max_attempts(3);
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts)
        .retry_config(retries);
    if let Some(client) = https_client() {
        loader = loader.http_client(client);
    }
    // Lambda hands a function its region and its role's credentials as environment
    // variables: taking them from there spares every cold start the default provider chains
    // (profile files, SSO, web identity, ECS, IMDS). Without them, the chains apply as usual.
    if let Ok(region) = std::env::var("AWS_REGION") {
        loader = loader.region(aws_config::Region::new(region));
    }
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
        loader = loader.credentials_provider(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        );
    }
    loader.load().await
}

/// A client of the DynamoDB at `url`, making up to `attempts` attempts per call.
#[cfg(test)]
pub(super) fn client_of(url: String, attempts: u32) -> Client {
    let aws = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
            aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "test"),
        ))
        .retry_config(
            aws_config::retry::RetryConfig::standard()
                .with_max_attempts(attempts)
                .with_initial_backoff(Duration::from_millis(1)),
        )
        .build();
    client(&aws)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use aws_sdk_dynamodb::types::AttributeValue;

    use crate::store::keys;

    use super::*;

    #[test]
    fn the_amazon_roots_make_a_valid_trust_store() {
        for pem in AMAZON_ROOTS {
            assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
        }
        assert!(
            https_client().is_some(),
            "the TLS context accepts the four Amazon roots"
        );
    }

    /// Counts of the metrics recorded on this thread.
    #[derive(Default)]
    struct Counts(std::sync::Mutex<HashMap<String, std::sync::Arc<std::sync::atomic::AtomicU64>>>);

    impl Counts {
        fn of(&self, name: &str) -> u64 {
            self.0
                .lock()
                .unwrap()
                .get(name)
                .map_or(0, |c| c.load(std::sync::atomic::Ordering::SeqCst))
        }
    }

    impl metrics::Recorder for Counts {
        fn describe_counter(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn describe_gauge(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn describe_histogram(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn register_counter(
            &self,
            key: &metrics::Key,
            _: &metrics::Metadata<'_>,
        ) -> metrics::Counter {
            let mut counts = self.0.lock().unwrap();
            metrics::Counter::from_arc(counts.entry(key.name().to_owned()).or_default().clone())
        }
        fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
            metrics::Gauge::noop()
        }
        fn register_histogram(
            &self,
            _: &metrics::Key,
            _: &metrics::Metadata<'_>,
        ) -> metrics::Histogram {
            metrics::Histogram::noop()
        }
    }

    /// The retries the EMF metric reports are the SDK's own: a DynamoDB that answers 500 once
    /// (the SDK retries it) gives two requests and one retry.
    #[test]
    fn the_client_counts_its_requests_and_the_sdks_retries() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let counts = Counts::default();
        let _local = metrics::set_default_local_recorder(&counts);
        let item = runtime.block_on(async {
            // A 500 first, then an empty GetItem.
            let url = crate::testing::answering(vec![
                (
                    "500 Internal Server Error",
                    r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"try again"}"#,
                ),
                ("200 OK", "{}"),
            ])
            .await;
            client_of(url, 3)
                .get_item()
                .table_name("t")
                .key(keys::PK, AttributeValue::S("a".into()))
                .key(keys::SK, AttributeValue::S("b".into()))
                .send()
                .await
                .expect("answered on the retry")
        });
        assert!(item.item().is_none());
        assert_eq!(counts.of("DynamoDbRequests"), 2);
        assert_eq!(counts.of("DynamoDbRetries"), 1);
    }
}
