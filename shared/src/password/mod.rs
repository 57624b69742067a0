//! Password hashing (§3.4 step 3): Argon2id, m = 19 MiB, t = 2, p = 1 (OWASP's minimum), PHC
//! string with a random salt. Hashing is CPU-bound, so it runs on the blocking pool and never
//! stalls other requests of the local gateway.

use argon2::password_hash::PasswordHasher as _;
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::SecretString;

use crate::domain::Password;

/// Argon2id parameters of the contract.
pub const MEMORY_KIB: u32 = 19 * 1024;
pub const ITERATIONS: u32 = 2;
pub const PARALLELISM: u32 = 1;

fn hasher() -> anyhow::Result<Argon2<'static>> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)
        .map_err(|e| anyhow::anyhow!("argon2 params: {e}"))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// A PHC string, or why hashing failed.
pub type Hashed = anyhow::Result<SecretString>;

/// Hashes on the calling thread.
pub fn hash_blocking(password: &Password) -> Hashed {
    let hash = hasher()?
        .hash_password(password.expose().as_bytes())
        .map_err(|e| anyhow::anyhow!("argon2 hash: {e}"))?;
    Ok(SecretString::from(hash.to_string()))
}

/// Hashes on tokio's blocking pool.
pub async fn hash(password: Password) -> Hashed {
    let started = std::time::Instant::now();
    let hash = tokio::task::spawn_blocking(move || hash_blocking(&password)).await?;
    metrics::histogram!("Argon2Time").record(started.elapsed().as_secs_f64() * 1000.0);
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::PasswordVerifier as _;
    use argon2::password_hash::phc::PasswordHash;
    use secrecy::ExposeSecret;

    #[test]
    fn hashes_are_argon2id_phc_strings_with_the_contract_parameters() {
        let password = Password::parse("SecurePass123!", &[]).unwrap();
        let hash = hash_blocking(&password).unwrap();
        let phc = hash.expose_secret();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        let parsed = PasswordHash::new(phc).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"SecurePass123!", &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"WrongPass123!!", &parsed)
                .is_err()
        );
        let again = hash_blocking(&password).unwrap();
        assert_ne!(
            again.expose_secret(),
            phc,
            "salted: the same password hashes differently"
        );
    }
}
