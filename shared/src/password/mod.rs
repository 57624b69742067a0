//! Password hashing (§3.4 step 3): Argon2id, m = 19 MiB, t = 2, p = 1 (OWASP's minimum), PHC
//! string with a random 16-byte salt. Hashing is CPU-bound, so it runs on the blocking pool and
//! never stalls other requests of the local gateway. Its memory is kept between hashes
//! (`memory`).

mod memory;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Params, RECOMMENDED_SALT_LEN, Version};
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
    let mut salt = [0u8; RECOMMENDED_SALT_LEN];
    getrandom::fill(&mut salt).map_err(|e| anyhow::anyhow!("CSPRNG: {e}"))?;
    hash_with_salt(password.expose().as_bytes(), &salt)
}

/// The PHC string `argon2`'s `hash_password_with_salt` gives, computed in the kept memory.
fn hash_with_salt(password: &[u8], salt: &[u8]) -> Hashed {
    let argon2 = hasher()?;
    let mut output = [0u8; Params::DEFAULT_OUTPUT_LEN];
    memory::with_blocks(argon2.params().block_count(), |blocks| {
        argon2.hash_password_into_with_memory(password, salt, &mut output, blocks)
    })?
    .map_err(|e| anyhow::anyhow!("argon2 hash: {e}"))?;
    let phc = |e: &dyn std::fmt::Display| anyhow::anyhow!("argon2 PHC string: {e}");
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(argon2.params()).map_err(|e| phc(&e))?,
        salt: Some(Salt::new(salt).map_err(|e| phc(&e))?),
        hash: Some(Output::new(&output).map_err(|e| phc(&e))?),
    };
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

    #[test]
    fn the_kept_memory_gives_the_crates_own_phc_strings() {
        use argon2::password_hash::PasswordHasher as _;
        let crate_hasher = hasher().unwrap();
        for (password, salt) in [
            (&b"SecurePass123!"[..], [7u8; 16]),
            (b"another one, longer than the first", [0xa5; 16]),
            (b"SecurePass123!", [0u8; 16]),
        ] {
            let expected = crate_hasher
                .hash_password_with_salt(password, &salt)
                .unwrap()
                .to_string();
            // Twice: fresh memory, then the kept (used and zeroed) memory.
            for _ in 0..2 {
                let ours = hash_with_salt(password, &salt).unwrap();
                assert_eq!(ours.expose_secret(), expected);
            }
        }
    }
}
