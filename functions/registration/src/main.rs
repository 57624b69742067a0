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

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    // Every registration validates a phone: build libphonenumber's metadata (~70 ms, measured
    // by make bench) in init, with its full CPU burst, not in the first customer's request.
    let _ = shared::domain::Phone::parse("+37060012345");
    let config = Config::from_env()?;
    let activation = ActivationSettings::from_env()?;
    let aws = aws_config_from_env().await;
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
