//! Lambda entry point: config, SDK client and cache built once at cold start.

use std::convert::Infallible;
use std::sync::Arc;

use categorization::Categorization;
use lambda_http::{Error, service_fn};
use shared::config::Config;
use shared::store::dynamodb::{DynamoStore, client_from_env};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let config = Config::from_env()?;
    let store = Arc::new(DynamoStore::new(
        client_from_env().await,
        &config.table_name,
    ));
    let function = Arc::new(Categorization::new(config, store));
    let metrics = shared::telemetry::emf::init("categorization");
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
