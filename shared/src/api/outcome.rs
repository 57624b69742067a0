//! The end of every request: one JSON log line with ids, route, status, code and duration (no
//! personal data), and the mapping of unexpected storage failures to 503/500 whose cause goes
//! to the log only (§1.3: a 5xx never reveals internals).

use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

// Deadlines are kept on tokio's clock, which tests can pause; outside them it is
// `std::time::Instant`.
use tokio::time::Instant as TokioInstant;

use lambda_http::{Body, Request, RequestExt, Response};
use tracing::Instrument as _;

use super::ApiError;
use crate::store::StoreError;

/// Turns a handler's result into the response and logs the outcome.
pub fn finish(
    route: &'static str,
    request_id: &str,
    tenant: Option<&str>,
    started: Instant,
    result: Result<Response<Body>, ApiError>,
) -> Response<Body> {
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    let (response, code) = match result {
        Ok(response) => (response, "OK"),
        Err(error) => {
            let code = error.code();
            (error.into_response(request_id), code)
        }
    };
    let status = response.status().as_u16();
    let tenant_id = tenant.unwrap_or("-");
    if response.headers().contains_key("idempotent-replayed") {
        // A replay repeats an answer counted when it was first given; it creates nothing.
        metrics::counter!("IdempotentReplays").increment(1);
    } else {
        record_metric(route, status, code);
    }
    if status >= 500 {
        tracing::error!(
            request_id,
            tenant_id,
            route,
            status,
            outcome = code,
            duration_ms,
            "request failed"
        );
    } else {
        tracing::info!(
            request_id,
            tenant_id,
            route,
            status,
            outcome = code,
            duration_ms,
            "request completed"
        );
    }
    response
}

/// Runs a request's handling in its span, so that every line logged meanwhile (a storage
/// warning, a delivery failure) carries the request id, and the route and tenant once they are
/// known ([`record_route`], [`record_tenant`]). The span is at ERROR level so that it is on at
/// any level asked for: a WARN line needs the ids as much as an INFO one (a span itself prints
/// nothing).
pub async fn in_request_span<T>(request_id: &str, work: impl Future<Output = T>) -> T {
    let span = tracing::error_span!(
        "request",
        request_id,
        route = tracing::field::Empty,
        tenant_id = tracing::field::Empty
    );
    work.instrument(span).await
}

/// Names the route in the current request's span.
pub fn record_route(route: &'static str) {
    tracing::Span::current().record("route", route);
}

/// Names the caller's tenant (from the verified token) in the current request's span.
pub fn record_tenant(tenant: &str) {
    tracing::Span::current().record("tenant_id", tenant);
}

/// What answering takes once the work stops: the response, the log line, the metrics
/// document and the post to the runtime API.
pub const ANSWER_MARGIN: Duration = Duration::from_millis(250);

/// The time the invocation has left for work: until Lambda's deadline (the function's timeout,
/// when Lambda stops it without an answer) less [`ANSWER_MARGIN`]. `None` without a deadline.
pub fn time_left(req: &Request) -> Option<Duration> {
    let deadline = req.lambda_context_ref()?.deadline;
    if deadline == 0 {
        return None;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Some(
        Duration::from_millis(deadline)
            .saturating_sub(now)
            .saturating_sub(ANSWER_MARGIN),
    )
}

/// What a write leaves of the invocation for the steps after it: reading back a write whose
/// answer was lost (at most 1 s), the e-mail, and the Idempotency-Key record's last word.
pub const AFTER_WRITE: Duration = Duration::from_secs(3);

/// What a request must have left before it starts a write: one SDK attempt (3 s) and
/// [`AFTER_WRITE`]. Cut by the deadline after its write, a request would answer 503 for work
/// that was done.
pub const WRITE_RESERVE: Duration = Duration::from_secs(6);

/// What the e-mail after a write leaves for the steps after it.
pub const SEND_RESERVE: Duration = Duration::from_secs(1);

/// When the request must be answered: [`time_left`] from now.
pub fn answer_by(req: &Request) -> Option<TokioInstant> {
    time_left(req).map(|left| TokioInstant::now() + left)
}

/// Refuses to start a write with less than [`WRITE_RESERVE`] before `answer_by`: 503, and
/// nothing written.
pub fn time_to_write(answer_by: Option<TokioInstant>) -> Result<(), ApiError> {
    match answer_by {
        Some(at) if at.saturating_duration_since(TokioInstant::now()) < WRITE_RESERVE => {
            tracing::warn!("too little of the invocation's time left to start a write");
            Err(ApiError::ServiceUnavailable {
                retry_after_seconds: 1,
            })
        }
        _ => Ok(()),
    }
}

/// Runs a write within its share of the invocation: until `answer_by` less [`AFTER_WRITE`].
/// Still unanswered then (the SDK may be retrying: its operation timeout is 8 s), the write is
/// dropped and reported `Unavailable`, its outcome unknown as after the SDK's own timeouts, and
/// the caller still has the time to read back whether it was applied. Cut by the invocation's
/// deadline instead, a write that was applied would be answered 503 with nothing read back.
pub async fn write_within<T>(
    answer_by: Option<TokioInstant>,
    write: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let Some(at) = answer_by else {
        return write.await;
    };
    let limit = at
        .saturating_duration_since(TokioInstant::now())
        .saturating_sub(AFTER_WRITE);
    tokio::time::timeout(limit, write)
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Unavailable(anyhow::anyhow!(
                "no answer to the write within its {limit:?} of the invocation"
            )))
        })
}

/// The most a read after a write of unknown outcome may take (a consistent `GetItem` takes
/// milliseconds; DynamoDB unreachable, it would take the SDK's retries).
const READ_BACK_LIMIT: Duration = Duration::from_secs(1);

/// What a step after the write leaves before `answer_by`: the invocation's own timer
/// ([`within_deadline`]) was set a moment before `answer_by` was, and must not win the race.
const STEP_MARGIN: Duration = Duration::from_millis(100);

/// Runs a step after the write (reading it back, recording the e-mail's failure) for at most
/// `limit` and within the invocation's time less [`STEP_MARGIN`]: `None` when it did not
/// finish.
pub async fn step_within<T>(
    answer_by: Option<TokioInstant>,
    limit: Duration,
    step: impl Future<Output = T>,
) -> Option<T> {
    let left = answer_by.map_or(limit, |at| {
        at.saturating_duration_since(TokioInstant::now())
            .saturating_sub(STEP_MARGIN)
            .min(limit)
    });
    tokio::time::timeout(left, step).await.ok()
}

/// After a write whose outcome is unknown (`cause`: it was `Unavailable`), reads back whether
/// it was applied, within [`READ_BACK_LIMIT`] and the invocation: `read` gives what the write
/// came to, `None` if it was not applied. Not applied, or not known, the write's own failure
/// is answered (503, which also releases a held Idempotency-Key claim).
pub async fn read_back<T>(
    answer_by: Option<TokioInstant>,
    request_id: &str,
    customer_id: &str,
    cause: anyhow::Error,
    read: impl Future<Output = Result<Option<T>, StoreError>>,
) -> Result<T, ApiError> {
    match step_within(answer_by, READ_BACK_LIMIT, read).await {
        Some(Ok(Some(applied))) => {
            tracing::warn!(
                request_id,
                customer_id,
                "the write was applied though its answer was lost"
            );
            Ok(applied)
        }
        Some(Err(e)) => {
            tracing::warn!(request_id, error = %e.detail(), "could not learn whether the write was applied");
            Err(storage_failure(StoreError::Unavailable(cause)))
        }
        Some(Ok(None)) | None => Err(storage_failure(StoreError::Unavailable(cause))),
    }
}

/// The time an e-mail after a write may take: until `answer_by` less [`SEND_RESERVE`].
pub fn time_to_send(answer_by: Option<TokioInstant>) -> Option<Duration> {
    answer_by.map(|at| {
        at.saturating_duration_since(TokioInstant::now())
            .saturating_sub(SEND_RESERVE)
    })
}

/// Runs a request's work within the invocation's time (see [`time_left`]). A request can make
/// several DynamoDB calls in a row, each allowed up to the SDK's operation timeout, so together
/// they could outlast the function's timeout; then Lambda would stop the function mid-request
/// and the client would get the gateway's bare 5xx. Cut short here instead, the request is
/// answered 503 `SERVICE_UNAVAILABLE` with `Retry-After`, and logged like any other.
pub async fn within_deadline<T>(
    req: &Request,
    work: impl Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    let Some(left) = time_left(req) else {
        return work.await;
    };
    match tokio::time::timeout(left, work).await {
        Ok(result) => result,
        Err(_) => {
            tracing::error!(
                time_left_ms = left.as_millis() as u64,
                "the invocation's deadline came before the request finished"
            );
            Err(ApiError::ServiceUnavailable {
                retry_after_seconds: 1,
            })
        }
    }
}

/// Maps a storage failure that the use case did not expect. The cause chain is logged here.
pub fn storage_failure(error: StoreError) -> ApiError {
    match error {
        StoreError::Unavailable(_) => {
            tracing::warn!(error = %error.detail(), "storage unavailable");
            ApiError::ServiceUnavailable {
                retry_after_seconds: 1,
            }
        }
        other => {
            tracing::error!(error = %other.detail(), "unexpected storage error");
            ApiError::Internal
        }
    }
}

/// The business metrics of §issue "observability": registrations created/rejected by code,
/// activations succeeded/failed by code, resends; plus every route's outcome.
fn record_metric(route: &'static str, status: u16, code: &'static str) {
    let ok = status < 300;
    match (route, ok) {
        ("POST /registration", true) => metrics::counter!("RegistrationsCreated").increment(1),
        ("POST /registration", false) => {
            metrics::counter!("RegistrationsRejected", "Code" => code).increment(1)
        }
        ("POST /{customerId}/activation", true) => {
            metrics::counter!("ActivationsSucceeded").increment(1)
        }
        ("POST /{customerId}/activation", false) => {
            metrics::counter!("ActivationsFailed", "Code" => code).increment(1)
        }
        ("POST /{customerId}/activation/code", true) => {
            metrics::counter!("ActivationCodesResent").increment(1)
        }
        ("POST /{customerId}/activation/code", false) => {
            metrics::counter!("ResendsRefused", "Code" => code).increment(1)
        }
        (_, _) => metrics::counter!("Requests", "Code" => code).increment(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never<T>() -> impl Future<Output = T> {
        std::future::pending()
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_gets_the_invocation_less_what_follows_it() {
        let left = Duration::from_secs(8);
        let answer_by = Some(TokioInstant::now() + left);
        let started = TokioInstant::now();
        let cut = write_within::<()>(answer_by, never()).await;
        assert!(matches!(cut, Err(StoreError::Unavailable(_))), "{cut:?}");
        let took = started.elapsed();
        assert_eq!(took, left - AFTER_WRITE);
        // Answered in time, or with no deadline at all: the write's own result.
        assert!(matches!(
            write_within(answer_by, async {
                Err::<(), _>(StoreError::ConditionFailed)
            })
            .await,
            Err(StoreError::ConditionFailed)
        ));
        assert_eq!(write_within(None, async { Ok(7) }).await.unwrap(), 7);
        // Past the write's share already: no time at all.
        let late = Some(TokioInstant::now() + AFTER_WRITE);
        assert!(write_within::<()>(late, never()).await.is_err());
        assert_eq!(started.elapsed(), took, "refused at once");
    }

    #[tokio::test(start_paused = true)]
    async fn a_step_after_the_write_gets_its_limit_within_the_invocation() {
        let limit = Duration::from_secs(1);
        for (left, allowed) in [
            (Some(Duration::from_secs(5)), limit),
            (Some(Duration::from_millis(800)), Duration::from_millis(700)),
            (None, limit),
        ] {
            let answer_by = left.map(|left| TokioInstant::now() + left);
            let started = TokioInstant::now();
            assert_eq!(step_within(answer_by, limit, never::<()>()).await, None);
            let took = started.elapsed();
            assert_eq!(took, allowed, "{left:?}");
            assert_eq!(step_within(answer_by, limit, async { 1 }).await, Some(1));
        }
    }
}
