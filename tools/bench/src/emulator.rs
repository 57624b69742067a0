//! A local Lambda Runtime API (the part a function's runtime client talks to): one instance
//! per function process. It records when the process first polls for an event (the end of its
//! init phase), hands out events one at a time, and times each invocation from the moment the
//! event is served to the moment its response (or error) is posted.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tokio::process::Child;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

const BASE: &str = "/2018-06-01/runtime";

/// How an invocation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Response,
    Error,
    InitError,
}

/// One finished invocation.
#[derive(Debug)]
pub struct Outcome {
    pub id: String,
    pub kind: Kind,
    /// From serving the event to receiving the function's answer.
    pub elapsed: Duration,
    pub body: String,
}

struct Pending {
    id: String,
    event: String,
}

struct Shared {
    function_arn: String,
    first_poll: watch::Sender<Option<Instant>>,
    events: tokio::sync::Mutex<mpsc::Receiver<Pending>>,
    served: Mutex<HashMap<String, Instant>>,
    results: mpsc::UnboundedSender<Outcome>,
}

pub struct Emulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    events: mpsc::Sender<Pending>,
    results: mpsc::UnboundedReceiver<Outcome>,
    server: JoinHandle<()>,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Emulator {
    pub async fn start(function_name: &str) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (events_tx, events_rx) = mpsc::channel(1);
        let (results_tx, results_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            function_arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{function_name}"),
            first_poll: watch::Sender::new(None),
            events: tokio::sync::Mutex::new(events_rx),
            served: Mutex::new(HashMap::new()),
            results: results_tx,
        });
        let app = Router::new()
            .route(&format!("{BASE}/invocation/next"), get(next))
            .route(
                &format!("{BASE}/invocation/{{id}}/response"),
                post(response),
            )
            .route(&format!("{BASE}/invocation/{{id}}/error"), post(error))
            .route(&format!("{BASE}/init/error"), post(init_error))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            addr,
            shared,
            events: events_tx,
            results: results_rx,
            server,
        })
    }

    /// `host:port` for `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Waits for the first `GET /next`; fails if the process exits or reports an init error.
    pub async fn first_poll(
        &mut self,
        child: &mut Child,
        timeout: Duration,
    ) -> anyhow::Result<Instant> {
        let mut polled = self.shared.first_poll.subscribe();
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        loop {
            if let Some(at) = *polled.borrow_and_update() {
                return Ok(at);
            }
            tokio::select! {
                changed = polled.changed() => changed?,
                status = child.wait() => bail!("the function exited during init ({})", status?),
                Some(outcome) = self.results.recv() => {
                    bail!("init error reported: {}", outcome.body)
                }
                () = &mut deadline => bail!("no GET /next within {timeout:?}"),
            }
        }
    }

    /// Serves one event and waits for its answer.
    pub async fn invoke(
        &mut self,
        event: String,
        child: &mut Child,
        timeout: Duration,
    ) -> anyhow::Result<Outcome> {
        let id = uuid::Uuid::new_v4().to_string();
        self.events
            .send(Pending {
                id: id.clone(),
                event,
            })
            .await
            .context("the emulator stopped")?;
        let outcome = tokio::select! {
            outcome = self.results.recv() => outcome.context("the emulator stopped")?,
            status = child.wait() => bail!("the function exited during an invocation ({})", status?),
            () = tokio::time::sleep(timeout) => bail!("no answer within {timeout:?}"),
        };
        if outcome.id != id {
            bail!("answer for {} while waiting for {id}", outcome.id);
        }
        Ok(outcome)
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> axum::response::Response {
    let now = Instant::now();
    shared.first_poll.send_if_modified(|first| {
        if first.is_none() {
            *first = Some(now);
            true
        } else {
            false
        }
    });
    let pending = shared.events.lock().await.recv().await;
    let Some(Pending { id, event }) = pending else {
        return StatusCode::GONE.into_response();
    };
    let deadline = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
        + 30_000;
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    set("content-type", "application/json");
    set("lambda-runtime-aws-request-id", &id);
    set("lambda-runtime-deadline-ms", &deadline.to_string());
    set("lambda-runtime-invoked-function-arn", &shared.function_arn);
    set(
        "lambda-runtime-trace-id",
        "Root=1-00000000-000000000000000000000000;Sampled=0",
    );
    if let Ok(mut served) = shared.served.lock() {
        served.insert(id, Instant::now());
    }
    (headers, event).into_response()
}

fn finish(shared: &Shared, id: String, kind: Kind, body: Bytes) -> StatusCode {
    let now = Instant::now();
    let served = shared
        .served
        .lock()
        .ok()
        .and_then(|mut served| served.remove(&id));
    let elapsed = served.map_or(Duration::ZERO, |at| now.duration_since(at));
    let _ = shared.results.send(Outcome {
        id,
        kind,
        elapsed,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    StatusCode::ACCEPTED
}

async fn response(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    finish(&shared, id, Kind::Response, body)
}

async fn error(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    finish(&shared, id, Kind::Error, body)
}

async fn init_error(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    finish(&shared, String::new(), Kind::InitError, body)
}
