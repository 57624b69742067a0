//! Lambda entry point: config, SDK clients, hierarchy cache and code sender built once at
//! cold start.

use std::convert::Infallible;
use std::sync::Arc;

use lambda_http::{Error, service_fn};
use registration::Registration;
use shared::activation::delivery;
use shared::activation::settings::ActivationSettings;
use shared::clock::SystemClock;
use shared::config::Config;
use shared::store::dynamodb::{DynamoStore, aws_config_from_env};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let config = Config::from_env()?;
    let activation = ActivationSettings::from_env()?;
    let aws = aws_config_from_env().await;
    let store = Arc::new(DynamoStore::new(
        shared::store::dynamodb::client(&aws),
        &config.table_name,
    ));
    let sender = delivery::sender(&activation.delivery, Some(&aws));
    let function = Arc::new(Registration::new(
        config,
        &activation,
        store.clone(),
        store.clone(),
        store,
        sender,
        Arc::new(SystemClock),
    ));
    let metrics = shared::telemetry::emf::init("registration");
    lambda_http::run(service_fn(move |req| {
        let function = Arc::clone(&function);
        async move {
            let request_id = shared::api::request_id(&req);
            let response = function.handle(req).await;
            shared::telemetry::emf::flush(metrics, &request_id);
            Ok::<_, Infallible>(response)
        }
    }))
    .await
}
