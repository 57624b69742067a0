//! Lambda entry point: config, SDK clients, hierarchy cache and code sender built once at
//! cold start.

use std::sync::Arc;

use lambda_http::Error;
use registration::Registration;
use shared::activation::delivery;
use shared::activation::settings::ActivationSettings;
use shared::clock::SystemClock;
use shared::config::Config;
use shared::store::dynamodb::{DynamoStore, aws_config_from_env};

// Lambda sends an environment one request at a time: a single-threaded runtime starts no
// worker threads at init (make bench); blocking work (Argon2) still gets its own thread.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let config = Config::from_env()?;
    let aws = aws_config_from_env().await;
    let store = Arc::new(DynamoStore::new(
        shared::store::dynamodb::client(&aws),
        &config.table_name,
    ));
    // The settings need Secrets Manager: unavailable at this cold start, requests get 503
    // and load them again (shared::lambda::prepare).
    let function = shared::lambda::prepare(registration::route, move || {
        let (config, aws, store) = (config.clone(), aws.clone(), store.clone());
        async move {
            let activation = ActivationSettings::load(&aws).await?;
            let sender = delivery::sender(&activation.delivery, Some(&aws));
            Ok(Registration::new(
                config,
                &activation,
                store.clone(),
                store.clone(),
                store,
                sender,
                Arc::new(SystemClock),
            ))
        }
    })
    .await?;
    shared::lambda::run("registration", function).await
}
