//! `local-gateway`: the local API Gateway for `make run`. Reads the functions' configuration
//! from the environment (as the Lambdas do) plus `API_PORT` (default 3000).

use std::net::SocketAddr;
use std::sync::Arc;

use local_gateway::{Functions, Gateway, LocalAuthorizer, router};
use shared::activation::delivery;
use shared::activation::settings::ActivationSettings;
use shared::config::Config;
use shared::store::dynamodb::{DynamoStore, aws_config_from_env};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::telemetry::init();
    let config = Config::from_env()?;
    let port: u16 = match std::env::var("API_PORT") {
        Err(_) => 3000,
        Ok(raw) => raw
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("API_PORT must be a port number, not {raw:?}"))?,
    };
    let aws = aws_config_from_env().await;
    let activation = ActivationSettings::load(&aws).await?;
    let store = DynamoStore::new(shared::store::dynamodb::client(&aws), &config.table_name);
    let sender = delivery::sender(&activation.delivery, None);
    let gateway = Arc::new(Gateway {
        functions: Functions::with_system_clock(config, &activation, store, sender),
        authorizer: LocalAuthorizer::from_env(),
        timeout: local_gateway::LAMBDA_TIMEOUT,
    });
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("local gateway listening on http://{addr}");
    axum::serve(listener, router(gateway))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
