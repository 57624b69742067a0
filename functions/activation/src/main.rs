//! Lambda entry point.

use std::convert::Infallible;
use std::sync::Arc;

use activation::Activation;
use lambda_http::{Error, service_fn};
use shared::config::Config;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let function = Arc::new(Activation::new(Config::from_env()?));
    lambda_http::run(service_fn(move |req| {
        let function = Arc::clone(&function);
        async move { Ok::<_, Infallible>(function.handle(req).await) }
    }))
    .await
}
