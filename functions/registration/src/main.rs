//! Lambda entry point: config, SDK client and hierarchy cache built once at cold start.

use std::convert::Infallible;
use std::sync::Arc;

use lambda_http::{Error, service_fn};
use registration::Registration;
use shared::clock::SystemClock;
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
    let function = Arc::new(Registration::new(
        config,
        store.clone(),
        store,
        Arc::new(SystemClock),
    ));
    lambda_http::run(service_fn(move |req| {
        let function = Arc::clone(&function);
        async move { Ok::<_, Infallible>(function.handle(req).await) }
    }))
    .await
}
