//! The registration binary as Lambda runs it, on a local Runtime API: a cold start that cannot
//! read its key from Secrets Manager still completes, answers 503 in the contract's envelope,
//! and serves requests once a later try reads the key (`shared::lambda::prepare`, wired in
//! `main.rs`). The key read is a key set, as during a rotation of the key (README →
//! Operating). No DynamoDB call is made: the requests are malformed JSON, which the handler
//! answers 400 once it exists.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde_json::Value;
use tokio::sync::{Mutex, mpsc};

/// Secrets Manager failing (500) until `ready`, then answering with a key set.
#[derive(Default)]
struct SecretsManager {
    ready: AtomicBool,
    calls: AtomicUsize,
}

async fn get_secret_value(State(sm): State<Arc<SecretsManager>>) -> (StatusCode, String) {
    sm.calls.fetch_add(1, Ordering::SeqCst);
    if sm.ready.load(Ordering::SeqCst) {
        let keys = serde_json::json!({
            "current": "cold-start-test-key-".repeat(3),
            "next": "cold-start-next-key-".repeat(3),
        });
        let answer = serde_json::json!({ "Name": "key", "SecretString": keys.to_string() });
        (StatusCode::OK, answer.to_string())
    } else {
        let error = r#"{"__type":"InternalServiceError","message":"try again"}"#;
        (StatusCode::INTERNAL_SERVER_ERROR, error.to_owned())
    }
}

/// The Runtime API's side of invocations: events in, the function's posts out.
struct Runtime {
    events: Mutex<mpsc::Receiver<(String, String)>>,
    posts: mpsc::UnboundedSender<(String, String)>,
}

async fn next(State(rt): State<Arc<Runtime>>) -> (HeaderMap, String) {
    let (id, event) = rt.events.lock().await.recv().await.expect("an event");
    let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + Duration::from_secs(10);
    let mut headers = HeaderMap::new();
    headers.insert("lambda-runtime-aws-request-id", id.parse().unwrap());
    let deadline_ms = deadline.as_millis().to_string();
    headers.insert("lambda-runtime-deadline-ms", deadline_ms.parse().unwrap());
    let arn = "arn:aws:lambda:us-east-1:123456789012:function:registration";
    headers.insert("lambda-runtime-invoked-function-arn", arn.parse().unwrap());
    (headers, event)
}

async fn posted(
    State(rt): State<Arc<Runtime>>,
    Path((id, kind)): Path<(String, String)>,
    body: Bytes,
) -> StatusCode {
    let _ = rt.posts.send((
        format!("{id}/{kind}"),
        String::from_utf8_lossy(&body).into(),
    ));
    StatusCode::ACCEPTED
}

async fn init_error(State(rt): State<Arc<Runtime>>, body: Bytes) -> StatusCode {
    let _ = rt
        .posts
        .send(("init/error".into(), String::from_utf8_lossy(&body).into()));
    StatusCode::ACCEPTED
}

/// The function's process, stopped when the test ends however it ends.
struct Stopped(std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

#[tokio::test]
async fn a_cold_start_without_its_key_answers_503_until_a_later_try_reads_it() {
    let sm = Arc::new(SecretsManager::default());
    let sm_address = serve(
        Router::new()
            .route("/", post(get_secret_value))
            .with_state(sm.clone()),
    )
    .await;
    let (events, receiver) = mpsc::channel(1);
    let (posts, mut answers) = mpsc::unbounded_channel();
    let runtime = Arc::new(Runtime {
        events: Mutex::new(receiver),
        posts,
    });
    let base = "/2018-06-01/runtime";
    let runtime_address = serve(
        Router::new()
            .route(&format!("{base}/invocation/next"), get(next))
            .route(&format!("{base}/invocation/{{id}}/{{kind}}"), post(posted))
            .route(&format!("{base}/init/error"), post(init_error))
            .with_state(runtime),
    )
    .await;

    let mailbox = std::env::temp_dir().join(format!("cold-start-{}.jsonl", std::process::id()));
    let mut function = Stopped(
        std::process::Command::new(env!("CARGO_BIN_EXE_registration"))
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", &runtime_address)
            .env("AWS_LAMBDA_FUNCTION_NAME", "registration")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_LEVEL", "INFO")
            .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env(
                "AWS_ENDPOINT_URL_SECRETS_MANAGER",
                format!("http://{sm_address}"),
            )
            // Nothing listens there: no request of this test reaches DynamoDB.
            .env("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9")
            .env("TABLE_NAME", "cold-start")
            .env("ACTIVATION_CODE_SECRET_ARN", "key")
            .env("ACTIVATION_KEY_REVISION", "7")
            .env("ACTIVATION_DELIVERY", "mailbox")
            .env("LOCAL_MAILBOX", &mailbox)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("the registration binary starts"),
    );
    let stdout = function.0.stdout.take().unwrap();
    let (log_lines, mut logged) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = log_lines.send(line);
        }
    });

    let event: Value = serde_json::from_str(include_str!(
        "../../../events/registration-malformed-json.json"
    ))
    .unwrap();
    let mut invoke = async |id: &str| {
        events
            .send((id.to_owned(), event.to_string()))
            .await
            .unwrap();
        let (what, body) = tokio::time::timeout(Duration::from_secs(30), answers.recv())
            .await
            .expect("an answer within 30 s")
            .unwrap();
        assert_eq!(what, format!("{id}/response"), "{body}");
        let response: Value = serde_json::from_str(&body).unwrap();
        let data: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
        (
            response["statusCode"].as_u64().unwrap(),
            response["headers"]["retry-after"]
                .as_str()
                .map(str::to_owned),
            data["data"]["error"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )
    };

    // The cold start's read failed (its retries too), and the init completed anyway.
    let first = invoke("first").await;
    assert_eq!(
        first,
        (503, Some("1".to_owned()), "SERVICE_UNAVAILABLE".to_owned())
    );
    let tried = sm.calls.load(Ordering::SeqCst);
    assert!(tried >= 1, "the cold start read the key");

    // Secrets Manager is back: a request a second after the last failed try reads the key,
    // and the handler it builds answers (and the next request too, without another read).
    sm.ready.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        invoke("second").await,
        (400, None, "MALFORMED_JSON".to_owned())
    );
    assert_eq!(
        invoke("third").await,
        (400, None, "MALFORMED_JSON".to_owned())
    );
    assert_eq!(sm.calls.load(Ordering::SeqCst), tried + 1);

    // The read logs how many keys it found and the revision; no line names a key.
    let mut lines = Vec::new();
    let read = loop {
        let line = tokio::time::timeout(Duration::from_secs(10), logged.recv())
            .await
            .expect("the function logs that it read its keys")
            .expect("a log line");
        lines.push(line.clone());
        let line: Value = serde_json::from_str(&line).unwrap_or_default();
        if line["message"] == "activation keys read" {
            break line;
        }
    };
    // The last request's lines are written before its answer; give the reader a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Ok(line) = logged.try_recv() {
        lines.push(line);
    }
    for line in &lines {
        assert!(!line.contains("-key-"), "{line}");
    }
    assert_eq!(read["keys"], 2, "{read}");
    assert_eq!(read["key_revision"], "7", "{read}");
}
