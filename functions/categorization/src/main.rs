//! Lambda entry point: config, SDK client and cache built once at cold start.

use std::sync::Arc;

use categorization::Categorization;
use lambda_http::Error;
use shared::config::Config;
use shared::store::dynamodb::{DynamoStore, client_from_env};

// Lambda sends an environment one request at a time: a single-threaded runtime starts no
// worker threads at init (make bench); blocking work (Argon2) still gets its own thread.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let config = Config::from_env()?;
    let store = Arc::new(DynamoStore::new(
        client_from_env().await,
        &config.table_name,
    ));
    let function = Categorization::new(config, store);
    shared::lambda::run("categorization", function).await
}
