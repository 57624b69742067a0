//! The delivery port (§4.3): the only way a code leaves the service. Two adapters: SES in AWS
//! and a local JSON-lines mailbox for `make run` and the tests. Neither logs the code.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::io::AsyncWriteExt;

use super::code::ActivationCode;
use super::settings::Delivery;
use crate::domain::TenantId;

/// One activation message.
#[derive(Debug, Clone)]
pub struct ActivationMessage {
    pub to: String,
    pub tenant: TenantId,
    pub customer_id: String,
    pub code: ActivationCode,
    pub expires_at: DateTime<Utc>,
}

#[async_trait]
pub trait CodeSender: Send + Sync {
    async fn send(&self, message: &ActivationMessage) -> anyhow::Result<()>;
}

/// Sends the code. A failure does not fail the request (the customer can ask for a resend):
/// it is logged without the address or the code, counted as `ActivationDeliveriesFailed`
/// (the template alarms on it), and reported as `false` for `activationCodeDelivery`.
///
/// The send is bounded by `answer_by` (see `api::outcome::time_to_send`): a request that has
/// written must still answer before its deadline, so an e-mail that takes longer counts as
/// failed.
pub async fn deliver(
    sender: &dyn CodeSender,
    message: &ActivationMessage,
    request_id: &str,
    answer_by: Option<tokio::time::Instant>,
) -> bool {
    let sent = match crate::api::outcome::time_to_send(answer_by) {
        None => sender.send(message).await,
        Some(limit) => tokio::time::timeout(limit, sender.send(message))
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within {limit:?}"))),
    };
    match sent {
        Ok(()) => true,
        Err(e) => {
            metrics::counter!("ActivationDeliveriesFailed").increment(1);
            tracing::warn!(request_id, customer_id = %message.customer_id, error = %format!("{e:#}"), "activation code delivery failed");
            false
        }
    }
}

/// Appends `{"to","tenantId","customerId","code","sentAt"}` lines to a file.
pub struct MailboxSender {
    path: PathBuf,
    lock: tokio::sync::Mutex<()>,
}

impl MailboxSender {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            lock: tokio::sync::Mutex::new(()),
        }
    }
}

#[async_trait]
impl CodeSender for MailboxSender {
    async fn send(&self, message: &ActivationMessage) -> anyhow::Result<()> {
        let mut line = serde_json::to_string(&serde_json::json!({
            "to": message.to,
            "tenantId": message.tenant,
            "customerId": message.customer_id,
            "code": message.code.expose(),
            "sentAt": crate::registration::timestamp(Utc::now()),
        }))?;
        line.push('\n');
        let _guard = self.lock.lock().await;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await?;
        }
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .await?;
        file.write_all(line.as_bytes()).await?;
        file.flush().await?;
        Ok(())
    }
}

/// SES v2 SendEmail from the configured identity.
pub struct SesSender {
    client: aws_sdk_sesv2::Client,
    from: String,
    subject: String,
}

impl SesSender {
    pub fn new(client: aws_sdk_sesv2::Client, from: String, subject: String) -> Self {
        Self {
            client,
            from,
            subject,
        }
    }
}

#[async_trait]
impl CodeSender for SesSender {
    async fn send(&self, message: &ActivationMessage) -> anyhow::Result<()> {
        use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
        let text = ses_text(message);
        let content = EmailContent::builder()
            .simple(
                Message::builder()
                    .subject(
                        Content::builder()
                            .data(&self.subject)
                            .charset("UTF-8")
                            .build()?,
                    )
                    .body(
                        Body::builder()
                            .text(Content::builder().data(text).charset("UTF-8").build()?)
                            .build(),
                    )
                    .build(),
            )
            .build();
        self.client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(&message.to).build())
            .content(content)
            .send()
            .await
            // SES messages can name the recipient ("… identities failed the check …: a@b"):
            // keep only the error's kind and code.
            .map_err(|e| {
                let code = e
                    .as_service_error()
                    .and_then(aws_sdk_sesv2::error::ProvideErrorMetadata::code)
                    .unwrap_or("none")
                    .to_owned();
                anyhow::anyhow!("SES SendEmail failed ({}, code {code})", sdk_error_kind(&e))
            })?;
        Ok(())
    }
}

/// The e-mail's plain text: the code and when it expires.
fn ses_text(message: &ActivationMessage) -> String {
    format!(
        "Your activation code is {}.\n\nIt expires at {} (UTC). If you did not register, ignore this e-mail.",
        message.code.expose(),
        message.expires_at.format("%Y-%m-%d %H:%M"),
    )
}

fn sdk_error_kind<E, R>(e: &aws_sdk_sesv2::error::SdkError<E, R>) -> &'static str {
    use aws_sdk_sesv2::error::SdkError;
    match e {
        SdkError::ServiceError(_) => "service error",
        SdkError::TimeoutError(_) => "timeout",
        SdkError::DispatchFailure(_) => "dispatch failure",
        SdkError::ResponseError(_) => "unreadable response",
        _ => "request not built",
    }
}

/// The sender the settings ask for.
pub fn sender(delivery: &Delivery, aws: Option<&aws_config::SdkConfig>) -> Arc<dyn CodeSender> {
    match (delivery, aws) {
        (Delivery::Ses { from, subject }, Some(aws)) => Arc::new(SesSender::new(
            aws_sdk_sesv2::Client::new(aws),
            from.clone(),
            subject.clone(),
        )),
        (Delivery::Mailbox { path }, _) => Arc::new(MailboxSender::new(path.clone())),
        (Delivery::Ses { .. }, None) => {
            Arc::new(MailboxSender::new(PathBuf::from(".local/mailbox.jsonl")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_mailbox_gets_one_json_line_per_message() {
        let path = std::env::temp_dir().join(format!("mailbox-{}.jsonl", uuid::Uuid::new_v4()));
        let sender = MailboxSender::new(path.clone());
        for code in ["12345678", "87654321"] {
            sender
                .send(&ActivationMessage {
                    to: "a@example.com".into(),
                    tenant: TenantId::parse("t1").unwrap(),
                    customer_id: "c1".into(),
                    code: ActivationCode::parse(code).unwrap(),
                    expires_at: Utc::now(),
                })
                .await
                .unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["code"], "87654321");
        assert_eq!(lines[0]["tenantId"], "t1");
        assert!(lines[0]["sentAt"].as_str().unwrap().ends_with('Z'));
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn the_e_mail_says_the_code_and_its_expiry_and_nothing_personal() {
        let message = ActivationMessage {
            to: "someone@example.com".into(),
            tenant: TenantId::parse("t1").unwrap(),
            customer_id: "c1".into(),
            code: ActivationCode::parse("24681357").unwrap(),
            expires_at: DateTime::parse_from_rfc3339("2026-11-28T09:30:59Z")
                .unwrap()
                .to_utc(),
        };
        let text = ses_text(&message);
        assert!(
            text.starts_with("Your activation code is 24681357."),
            "{text}"
        );
        assert!(
            text.contains("It expires at 2026-11-28 09:30 (UTC)."),
            "{text}"
        );
        for other in ["someone", "t1", "c1"] {
            assert!(!text.contains(other), "{text}");
        }
    }
}
