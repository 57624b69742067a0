//! HMAC-SHA-256 under the server secret (`ACTIVATION_CODE_SECRET`): activation code keys and
//! `Idempotency-Key` body hashes, each under a label of its own so neither can stand for the
//! other.

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// A MAC keyed by `secret` that has already taken `label` (a versioned, NUL-terminated name).
pub(crate) fn mac(secret: &SecretString, label: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.expose_secret().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any size"));
    mac.update(label);
    mac
}
