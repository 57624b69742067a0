//! Activation settings, read once at cold start by the functions that issue or check codes.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::config::ConfigError;
use crate::keyed::KeySet;

/// Where codes go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// `ACTIVATION_DELIVERY=ses`: SES SendEmail from `SES_FROM_ADDRESS`.
    Ses { from: String, subject: String },
    /// `ACTIVATION_DELIVERY=mailbox` (default): append JSON lines to `LOCAL_MAILBOX`.
    Mailbox { path: PathBuf },
}

#[derive(Clone)]
pub struct ActivationSettings {
    /// `ACTIVATION_CODE_SECRET` (required): one key of at least 32 characters, or a key set
    /// while the key is rotated.
    pub keys: KeySet,
    /// `ACTIVATION_CODE_TTL_SECONDS` (default 86400).
    pub code_ttl: Duration,
    pub delivery: Delivery,
}

impl std::fmt::Debug for ActivationSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivationSettings")
            .field("keys", &self.keys)
            .field("code_ttl", &self.code_ttl)
            .field("delivery", &self.delivery)
            .finish()
    }
}

impl ActivationSettings {
    /// From the environment only (`ACTIVATION_CODE_SECRET` as a value): local runs and tests.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// At cold start: with `ACTIVATION_CODE_SECRET_ARN` (in AWS) the key is read from Secrets
    /// Manager, so it never sits in the function's configuration, where anyone allowed
    /// `lambda:GetFunctionConfiguration` could read it; else `ACTIVATION_CODE_SECRET`.
    /// Without an ARN no Secrets Manager client is built: a cold start that does not read
    /// the secret does not pay for one.
    ///
    /// Logs how many keys it read and `ACTIVATION_KEY_REVISION`, which each step of a key
    /// rotation changes (README → Operating): the functions' logs show which have started
    /// afresh.
    pub async fn load(aws: &aws_config::SdkConfig) -> Result<Self, SettingsError> {
        let get = |name: &str| std::env::var(name).ok();
        let settings = if get(SECRET_ARN).is_some_and(|arn| !arn.trim().is_empty()) {
            let client = aws_sdk_secretsmanager::Client::new(aws);
            Self::load_with(&client, get).await?
        } else {
            Self::from_lookup(get)?
        };
        tracing::info!(
            keys = settings.keys.count(),
            key_revision = get("ACTIVATION_KEY_REVISION").as_deref().unwrap_or("-"),
            "activation keys read"
        );
        Ok(settings)
    }

    /// [`ActivationSettings::load`] with the variables from `get`.
    pub async fn load_with(
        client: &aws_sdk_secretsmanager::Client,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SettingsError> {
        let Some(arn) = get(SECRET_ARN).filter(|v| !v.trim().is_empty()) else {
            return Ok(Self::from_lookup(get)?);
        };
        let secret = secret_from_secrets_manager(client, arn.trim()).await?;
        Ok(Self::from_lookup(|name| match name {
            "ACTIVATION_CODE_SECRET" => Some(secret.expose_secret().to_owned()),
            _ => get(name),
        })?)
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let secret = var("ACTIVATION_CODE_SECRET").ok_or(ConfigError {
            variable: "ACTIVATION_CODE_SECRET",
            problem: "is required".into(),
        })?;
        // Dropped zeroed, as the keys are.
        let secret = SecretString::from(secret);
        let keys = KeySet::parse(secret.expose_secret()).map_err(|problem| ConfigError {
            variable: "ACTIVATION_CODE_SECRET",
            problem,
        })?;
        let ttl = match var("ACTIVATION_CODE_TTL_SECONDS") {
            None => 86_400,
            Some(raw) => raw
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|n| (1..=7 * 86_400).contains(n))
                .ok_or(ConfigError {
                    variable: "ACTIVATION_CODE_TTL_SECONDS",
                    problem: "must be a whole number of seconds from 1 to 604800".into(),
                })?,
        };
        let delivery = match var("ACTIVATION_DELIVERY").as_deref().map(str::trim) {
            None | Some("mailbox") => Delivery::Mailbox {
                path: PathBuf::from(
                    var("LOCAL_MAILBOX").unwrap_or_else(|| ".local/mailbox.jsonl".into()),
                ),
            },
            Some("ses") => Delivery::Ses {
                from: var("SES_FROM_ADDRESS").ok_or(ConfigError {
                    variable: "SES_FROM_ADDRESS",
                    problem: "is required when ACTIVATION_DELIVERY=ses".into(),
                })?,
                subject: var("ACTIVATION_EMAIL_SUBJECT")
                    .unwrap_or_else(|| "Your activation code".into()),
            },
            Some(_) => {
                return Err(ConfigError {
                    variable: "ACTIVATION_DELIVERY",
                    problem: "must be ses or mailbox".into(),
                });
            }
        };
        Ok(Self {
            keys,
            code_ttl: Duration::from_secs(ttl),
            delivery,
        })
    }

    /// For tests: a fixed secret and a mailbox file.
    pub fn for_mailbox(path: PathBuf, code_ttl: Duration) -> Self {
        Self {
            keys: KeySet::single(SecretString::from("test-secret-".repeat(4))),
            code_ttl,
            delivery: Delivery::Mailbox { path },
        }
    }

    pub fn hasher(&self) -> super::code::CodeHasher {
        super::code::CodeHasher::new(self.keys.clone())
    }

    /// The `Idempotency-Key` records' body hash, keyed by the same keys under its own label.
    pub fn body_hasher(&self) -> crate::api::idempotency::BodyHasher {
        crate::api::idempotency::BodyHasher::new(self.keys.clone())
    }
}

const SECRET_ARN: &str = "ACTIVATION_CODE_SECRET_ARN";

/// Why the activation settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// Secrets Manager throttled, failed or could not be reached: a later try may succeed.
    #[error("{0} (Secrets Manager unavailable)")]
    Unavailable(ConfigError),
    /// The configuration, or the secret it names, is wrong: no retry helps.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
}

impl SettingsError {
    /// The variable and the problem, whichever kind.
    pub fn config(&self) -> &ConfigError {
        match self {
            Self::Unavailable(e) | Self::Invalid(e) => e,
        }
    }
}

/// The string value of a Secrets Manager secret. An error names the variable and the
/// service's error code, never the value.
pub async fn secret_from_secrets_manager(
    client: &aws_sdk_secretsmanager::Client,
    arn: &str,
) -> Result<SecretString, SettingsError> {
    use aws_sdk_secretsmanager::error::ProvideErrorMetadata as _;
    let failed = |problem: String| ConfigError {
        variable: SECRET_ARN,
        problem,
    };
    let output = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| {
            let code = e.code().unwrap_or("no error code").to_owned();
            let error = failed(format!("names a secret that could not be read ({code})"));
            if crate::store::dynamodb::transient(
                &e,
                &["InternalServiceError", "ThrottlingException"],
            ) {
                SettingsError::Unavailable(error)
            } else {
                SettingsError::Invalid(error)
            }
        })?;
    output
        .secret_string()
        .map(|s| SecretString::from(s.to_owned()))
        .ok_or_else(|| failed("names a secret without a string value".into()).into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> Result<ActivationSettings, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        ActivationSettings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn activation_settings_fail_fast_naming_the_variable() {
        let secret = "s".repeat(32);
        let key_set = format!(r#"{{"current":"{secret}","next":"{}"}}"#, "n".repeat(32));
        let without_current = format!(r#"{{"next":"{secret}"}}"#);
        let read = settings(&[("ACTIVATION_CODE_SECRET", &key_set)]).unwrap();
        assert_eq!(read.keys.count(), 2);
        assert_eq!(read.keys.current().expose_secret(), secret);
        let cases: Vec<(Vec<(&str, &str)>, Option<&str>)> = vec![
            (vec![], Some("ACTIVATION_CODE_SECRET")),
            (
                vec![("ACTIVATION_CODE_SECRET", "short")],
                Some("ACTIVATION_CODE_SECRET"),
            ),
            (vec![("ACTIVATION_CODE_SECRET", &secret)], None),
            (vec![("ACTIVATION_CODE_SECRET", &key_set)], None),
            (
                vec![("ACTIVATION_CODE_SECRET", &without_current)],
                Some("ACTIVATION_CODE_SECRET"),
            ),
            (
                vec![
                    ("ACTIVATION_CODE_SECRET", &secret),
                    ("ACTIVATION_CODE_TTL_SECONDS", "0"),
                ],
                Some("ACTIVATION_CODE_TTL_SECONDS"),
            ),
            (
                vec![
                    ("ACTIVATION_CODE_SECRET", &secret),
                    ("ACTIVATION_DELIVERY", "ses"),
                ],
                Some("SES_FROM_ADDRESS"),
            ),
            (
                vec![
                    ("ACTIVATION_CODE_SECRET", &secret),
                    ("ACTIVATION_DELIVERY", "pigeon"),
                ],
                Some("ACTIVATION_DELIVERY"),
            ),
        ];
        for (pairs, expected) in cases {
            assert_eq!(
                settings(&pairs).err().map(|e| e.variable),
                expected,
                "{pairs:?}"
            );
        }
    }

    /// Secrets Manager's answers at a cold start: those a later try may not meet (throttling,
    /// its own failures, no answer) are `Unavailable`, so the function starts and answers 503
    /// until the key loads; a wrong or missing secret, or a role without access, is
    /// `Invalid` and fails the cold start. Neither names more than the service's code.
    #[tokio::test]
    async fn a_secret_that_could_not_be_read_says_whether_a_retry_may_help() {
        let cases = [
            ("400 Bad Request", "ThrottlingException", true),
            ("500 Internal Server Error", "InternalServiceError", true),
            ("503 Service Unavailable", "ServiceUnavailable", true),
            ("400 Bad Request", "ResourceNotFoundException", false),
            ("400 Bad Request", "AccessDeniedException", false),
            ("400 Bad Request", "DecryptionFailure", false),
        ];
        for (status, code, unavailable) in cases {
            let body: &'static str = Box::leak(
                format!(r#"{{"__type":"{code}","Message":"the secret's name"}}"#).into_boxed_str(),
            );
            let url = crate::testing::answering(vec![(status, body)]).await;
            let error = secret_from_secrets_manager(&client_of(url), "arn:secret")
                .await
                .unwrap_err();
            assert_eq!(
                matches!(error, SettingsError::Unavailable(_)),
                unavailable,
                "{code}: {error:?}"
            );
            assert_eq!(error.config().variable, SECRET_ARN);
            assert!(error.config().problem.contains(code), "{code}: {error}");
            assert!(!error.to_string().contains("the secret's name"), "{error}");
        }
        // Nobody listening: out of reach, a retry may get through.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let error = secret_from_secrets_manager(&client_of(url), "arn:secret")
            .await
            .unwrap_err();
        assert!(matches!(error, SettingsError::Unavailable(_)), "{error:?}");
        // A secret without a string value is the configuration's problem.
        let url = crate::testing::answering(vec![("200 OK", r#"{"ARN":"arn:secret"}"#)]).await;
        let error = secret_from_secrets_manager(&client_of(url), "arn:secret")
            .await
            .unwrap_err();
        assert!(matches!(error, SettingsError::Invalid(_)), "{error:?}");
    }

    /// A Secrets Manager client of the service at `url`, one attempt per call.
    fn client_of(url: String) -> aws_sdk_secretsmanager::Client {
        let config = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
            .region(aws_sdk_secretsmanager::config::Region::new("us-east-1"))
            .endpoint_url(url)
            .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .retry_config(aws_sdk_secretsmanager::config::retry::RetryConfig::disabled())
            .build();
        aws_sdk_secretsmanager::Client::from_conf(config)
    }

    #[test]
    fn the_secret_never_shows_in_debug_output() {
        let s = settings(&[("ACTIVATION_CODE_SECRET", &"topsecret".repeat(4))]).unwrap();
        assert!(!format!("{s:?}").contains("topsecret"));
        assert_eq!(s.code_ttl, Duration::from_secs(86_400));
    }
}
