//! What a fresh process pays for its first TLS key share with the SDK's TLS provider
//! (aws-lc-rs, as built by this workspace): the random bytes and the X25519 key a ClientHello
//! needs. Prints milliseconds; `make bench` runs it in several fresh processes.

use aws_lc_rs::agreement::{EphemeralPrivateKey, X25519};
use aws_lc_rs::rand::SystemRandom;

fn main() -> Result<(), aws_lc_rs::error::Unspecified> {
    let started = std::time::Instant::now();
    let key = EphemeralPrivateKey::generate(&X25519, &SystemRandom::new())?;
    std::hint::black_box(key.compute_public_key()?);
    println!("{:.3}", started.elapsed().as_secs_f64() * 1000.0);
    Ok(())
}
