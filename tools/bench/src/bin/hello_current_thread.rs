//! The cold-start baseline as the functions run: the same minimal lambda_http hello-world on
//! tokio's single-threaded runtime, which starts no worker threads at init. Reported beside
//! the `hello` baseline (the usual `#[tokio::main]` template), so that the functions' own
//! choice of runtime is not counted in their favour.

use lambda_http::{Error, Request, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_http::run(service_fn(|_: Request| async { Ok::<_, Error>("hello") })).await
}
