//! The cold-start baseline: a minimal lambda_http hello-world, built in the same profile as the
//! functions it is compared with.

use lambda_http::{Error, Request, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::run(service_fn(|_: Request| async { Ok::<_, Error>("hello") })).await
}
