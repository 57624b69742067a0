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
    let activation = ActivationSettings::load(&aws).await?;
    let store = Arc::new(DynamoStore::new(
        shared::store::dynamodb::client(&aws),
        &config.table_name,
    ));
    let sender = delivery::sender(&activation.delivery, Some(&aws));
    let function = Registration::new(
        config,
        &activation,
        store.clone(),
        store.clone(),
        store,
        sender,
        Arc::new(SystemClock),
    );
    shared::lambda::run("registration", function).await
}
