//! Fault injection between the functions and DynamoDB: a proxy that, for a seeded share of the
//! SDK's HTTP requests, drops the connection, answers 500, answers
//! `ProvisionedThroughputExceededException`, or delays before forwarding to moto. Faults are
//! injected before a request reaches moto, so every outcome is knowable; a response lost after
//! a commit is covered in AWS by the transaction's `ClientRequestToken` (moto ignores tokens).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::support::{Stack, contract_body};

#[derive(Default)]
pub struct FaultCounts {
    pub requests: AtomicU64,
    pub dropped: AtomicU64,
    pub server_errors: AtomicU64,
    pub throttled: AtomicU64,
    pub delayed: AtomicU64,
}

impl FaultCounts {
    fn injected(&self) -> u64 {
        self.dropped.load(Ordering::SeqCst)
            + self.server_errors.load(Ordering::SeqCst)
            + self.throttled.load(Ordering::SeqCst)
            + self.delayed.load(Ordering::SeqCst)
    }
}

/// A deterministic xorshift generator: the same seed injects the same faults in the same order.
struct Dice(AtomicU64);

impl Dice {
    fn roll(&self) -> u64 {
        let mut x = self.0.load(Ordering::SeqCst);
        loop {
            let mut next = x;
            next ^= next << 13;
            next ^= next >> 7;
            next ^= next << 17;
            match self
                .0
                .compare_exchange(x, next, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return next % 100,
                Err(current) => x = current,
            }
        }
    }
}

/// The test run's moto as `host:port` (`make test` starts it and sets the endpoint).
fn moto_upstream() -> String {
    let moto = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").expect("run with make test");
    moto.trim_start_matches("http://").to_owned()
}

/// Listens on a free local port and hands each connection to `handle`; returns the URL.
async fn listen<F, Fut>(handle: F) -> String
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(handle(client));
        }
    });
    url
}

/// Starts the proxy in front of `upstream` (host:port); returns its URL.
pub async fn start_proxy(upstream: String, seed: u64, counts: Arc<FaultCounts>) -> String {
    let dice = Arc::new(Dice(AtomicU64::new(seed | 1)));
    listen(move |client| {
        let (upstream, dice, counts) = (upstream.clone(), dice.clone(), counts.clone());
        async move {
            let _ = serve(client, &upstream, &dice, &counts).await;
        }
    })
    .await
}

/// A DynamoDB answer of `status` with a JSON `payload`, closing the connection.
fn reply(status: &str, payload: String) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{payload}",
        payload.len()
    )
}

/// Reads one HTTP/1.1 request: head and `Content-Length` body.
async fn read_request(stream: &mut TcpStream) -> std::io::Result<Option<(String, Vec<u8>)>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(Some((head, body)))
}

async fn serve(
    mut client: TcpStream,
    upstream: &str,
    dice: &Dice,
    counts: &FaultCounts,
) -> std::io::Result<()> {
    // One request per connection: every answer says `Connection: close`.
    let Some((head, body)) = read_request(&mut client).await? else {
        return Ok(());
    };
    counts.requests.fetch_add(1, Ordering::SeqCst);
    let roll = dice.roll();
    match roll {
        0..=14 => {
            counts.dropped.fetch_add(1, Ordering::SeqCst);
            return Ok(()); // the connection closes with no answer
        }
        15..=27 => {
            counts.server_errors.fetch_add(1, Ordering::SeqCst);
            let payload = json!({"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError", "message": "injected"}).to_string();
            client
                .write_all(reply("500 Internal Server Error", payload).as_bytes())
                .await?;
            return Ok(());
        }
        28..=42 => {
            counts.throttled.fetch_add(1, Ordering::SeqCst);
            let payload = json!({"__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException", "message": "injected"}).to_string();
            client
                .write_all(reply("400 Bad Request", payload).as_bytes())
                .await?;
            return Ok(());
        }
        43..=52 => {
            counts.delayed.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        _ => {}
    }
    let answer = forward(&head, &body, upstream).await?;
    client.write_all(&answer).await?;
    client.shutdown().await
}

/// Sends one request to moto with `Connection: close` and returns its whole answer.
async fn forward(head: &str, body: &[u8], upstream: &str) -> std::io::Result<Vec<u8>> {
    let mut head_lines: Vec<&str> = head
        .trim_end()
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    head_lines.push("connection: close");
    let mut forwarded = head_lines.join("\r\n").into_bytes();
    forwarded.extend_from_slice(b"\r\n\r\n");
    forwarded.extend_from_slice(body);
    let mut server = TcpStream::connect(upstream).await?;
    server.write_all(&forwarded).await?;
    let mut answer = Vec::new();
    server.read_to_end(&mut answer).await?;
    Ok(answer)
}

/// Which request bodies a proxy acts on: those holding `has` and not `lacks`.
#[derive(Clone, Copy)]
struct Needle {
    has: &'static str,
    lacks: Option<&'static str>,
}

impl Needle {
    fn matches(self, body: &[u8]) -> bool {
        let holds = |text: &str| body.windows(text.len()).any(|w| w == text.as_bytes());
        holds(self.has) && !self.lacks.is_some_and(holds)
    }
}

impl From<&'static str> for Needle {
    fn from(has: &'static str) -> Self {
        Self { has, lacks: None }
    }
}

/// An Idempotency-Key claim's put: `lockExpiresAt` as an item's attribute, and not a
/// release's tombstone, which has `releasedAt` as one. (Conditions name both unquoted.)
const CLAIM_PUT: Needle = Needle {
    has: "\"lockExpiresAt\":",
    lacks: Some("\"releasedAt\":"),
};

/// A proxy that forwards every request to moto and, once armed, loses moto's answer to the
/// first request whose body contains `needle`: the write is applied, the caller never hears.
struct LosingProxy {
    url: String,
    armed: Arc<AtomicBool>,
    lost: Arc<AtomicU64>,
}

impl LosingProxy {
    async fn start(upstream: String, needle: impl Into<Needle>) -> Self {
        let needle = needle.into();
        let armed = Arc::new(AtomicBool::new(false));
        let lost = Arc::new(AtomicU64::new(0));
        let (armed_in, lost_in) = (armed.clone(), lost.clone());
        let url = listen(move |mut client| {
            let (upstream, armed, lost) = (upstream.clone(), armed_in.clone(), lost_in.clone());
            async move {
                let Ok(Some((head, body))) = read_request(&mut client).await else {
                    return;
                };
                let Ok(answer) = forward(&head, &body, &upstream).await else {
                    return;
                };
                if needle.matches(&body) && armed.swap(false, Ordering::SeqCst) {
                    lost.fetch_add(1, Ordering::SeqCst);
                    return; // applied by moto; the connection closes with no answer
                }
                let _ = client.write_all(&answer).await;
                let _ = client.shutdown().await;
            }
        })
        .await;
        Self { url, armed, lost }
    }
}

/// Like [`LosingProxy`], and then unreachable for that request: once armed, the first
/// request with `needle` in its body reaches moto and loses its answer, and every later one
/// (the SDK's retries) is dropped before moto, until disarmed. Stalling, each connection is
/// held open with no answer instead of closed. Holding, each dropped request is kept, to be
/// delivered to moto later ([`CutOffProxy::deliver_held`]).
struct CutOffProxy {
    url: String,
    upstream: String,
    armed: Arc<AtomicBool>,
    hold: Arc<AtomicBool>,
    held: Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>,
    stall: Arc<AtomicBool>,
    apply_first: Arc<AtomicBool>,
    seen: Arc<AtomicU64>,
    applied: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
}

impl CutOffProxy {
    async fn start(upstream: String, needle: impl Into<Needle>) -> Self {
        let needle = needle.into();
        let [armed, stall, apply_first, hold] = [(); 4].map(|()| Arc::new(AtomicBool::new(false)));
        let [seen, applied, dropped] = [(); 3].map(|()| Arc::new(AtomicU64::new(0)));
        let held = Arc::new(std::sync::Mutex::new(Vec::new()));
        let shared = (
            (hold.clone(), held.clone()),
            armed.clone(),
            stall.clone(),
            apply_first.clone(),
            seen.clone(),
            applied.clone(),
            dropped.clone(),
        );
        let to = upstream.clone();
        let url = listen(move |mut client| {
            let upstream = to.clone();
            let ((hold, held), armed, stall, apply_first, seen, applied, dropped) = shared.clone();
            async move {
                let Ok(Some((head, body))) = read_request(&mut client).await else {
                    return;
                };
                if needle.matches(&body) && armed.load(Ordering::SeqCst) {
                    if seen.fetch_add(1, Ordering::SeqCst) > 0
                        || !apply_first.load(Ordering::SeqCst)
                    {
                        dropped.fetch_add(1, Ordering::SeqCst);
                        if hold.load(Ordering::SeqCst) {
                            held.lock().unwrap().push((head, body));
                        }
                    } else if forward(&head, &body, &upstream).await.is_ok() {
                        applied.fetch_add(1, Ordering::SeqCst);
                    }
                    if stall.load(Ordering::SeqCst) {
                        // Until the client gives up on it.
                        let mut buf = [0u8; 1024];
                        while client.read(&mut buf).await.is_ok_and(|n| n > 0) {}
                    }
                    return; // the connection closes with no answer
                }
                let Ok(answer) = forward(&head, &body, &upstream).await else {
                    return;
                };
                let _ = client.write_all(&answer).await;
                let _ = client.shutdown().await;
            }
        })
        .await;
        Self {
            url,
            upstream,
            armed,
            hold,
            held,
            stall,
            apply_first,
            seen,
            applied,
            dropped,
        }
    }

    /// Armed: the first matching request is applied (`apply_first`) or dropped like the rest.
    fn arm(&self, armed: bool, apply_first: bool) {
        self.seen.store(0, Ordering::SeqCst);
        self.apply_first.store(apply_first, Ordering::SeqCst);
        self.armed.store(armed, Ordering::SeqCst);
    }

    /// Sends the held requests to moto now, in the order they came: each body with moto's
    /// answer.
    async fn deliver_held(&self) -> Vec<(Value, String)> {
        let held = std::mem::take(&mut *self.held.lock().unwrap());
        let mut delivered = Vec::new();
        for (head, body) in held {
            let answer = forward(&head, &body, &self.upstream).await.expect("moto");
            let body = serde_json::from_slice(&body).expect("a JSON request body");
            delivered.push((body, String::from_utf8_lossy(&answer).into_owned()));
        }
        delivered
    }
}

#[tokio::test]
async fn a_registration_applied_but_never_answered_still_sends_its_code() {
    // DynamoDB applied the transaction, its answer was lost, and the SDK's retries did not get
    // through. Answered 503, the customer would never get its code: a retry meets its e-mail
    // (409) without learning its id, a keyed retry replays the 201 written with the
    // transaction ("SENT"). One consistent read finds the customer, and the request goes on.
    let upstream = moto_upstream();
    let proxy = CutOffProxy::start(upstream, "emailNormalized").await;
    let stack = Stack::start_with_dynamodb(Some(proxy.url.clone())).await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    for (n, key) in [(1, None), (2, Some("cut-off-key"))] {
        let email = format!("cut-off-{n}@example.com");
        let body = contract_body(&tenant, &email);
        proxy.arm(true, true);
        let reply = match key {
            Some(key) => stack.register_with_key(&tenant, key, &body).await,
            None => stack.register(&tenant, &body).await,
        };
        proxy.arm(false, false);
        assert_eq!(
            proxy.applied.load(Ordering::SeqCst),
            n,
            "the write reached moto"
        );
        assert!(
            proxy.dropped.load(Ordering::SeqCst) >= n,
            "the SDK retried, and its retries were dropped"
        );
        assert_eq!(reply.status, 201, "{}", reply);
        assert_eq!(reply.body["data"]["activationCodeDelivery"], "SENT");
        let id = reply.body["data"]["id"].as_str().unwrap().to_owned();
        let code = stack.code_for(&id);
        if let Some(key) = key {
            let replay = stack.register_with_key(&tenant, key, &body).await;
            assert_eq!(replay.status, 201, "{}", replay);
            assert_eq!(replay.body["data"]["id"], id.as_str());
        }
        let activated = stack.activate(&tenant, &id, &email, &code).await;
        assert_eq!(activated.status, 200, "{}", activated);
    }
    let items = stack.items_of(&tenant).await;
    assert_eq!(items.iter().filter(|i| i["SK"] == "CUSTOMER").count(), 2);

    // Nothing applied (every try dropped before moto): 503, and the key's claim is released,
    // so the key's retry registers.
    let body = contract_body(&tenant, "cut-off-none@example.com");
    proxy.arm(true, false);
    let reply = stack
        .register_with_key(&tenant, "cut-off-none", &body)
        .await;
    proxy.arm(false, false);
    assert_eq!(reply.status, 503, "{}", reply);
    assert_eq!(
        proxy.applied.load(Ordering::SeqCst),
        2,
        "nothing more reached moto"
    );
    let retry = stack
        .register_with_key(&tenant, "cut-off-none", &body)
        .await;
    assert_eq!(retry.status, 201, "{}", retry);

    // An e-mail another customer holds, this request's write dropped: the marker names that
    // customer, not this request's, so nothing was stored and nothing is sent.
    let sent = stack.mail().len();
    proxy.arm(true, false);
    let reply = stack
        .register(&tenant, &contract_body(&tenant, "cut-off-1@example.com"))
        .await;
    proxy.arm(false, false);
    assert_eq!(reply.status, 503, "{}", reply);
    assert_eq!(stack.mail().len(), sent, "no code for another's customer");
}

/// DynamoDB as it answers retries of a transaction it is still running: the first request
/// with `needle` is held, not applied, and it and the next `busy - 1` (the same transaction
/// asked again) are answered `TransactionInProgressException`; the one after applies the held
/// request and gets its answer, as DynamoDB answers a token it has finished. moto ignores
/// tokens, so the proxy plays that part; every body with `needle` is kept.
struct InProgressProxy {
    url: String,
    bodies: Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
}

impl InProgressProxy {
    async fn start(upstream: String, needle: &'static str, busy: usize) -> Self {
        let bodies: Arc<std::sync::Mutex<Vec<Vec<u8>>>> = Arc::default();
        let held: Arc<std::sync::Mutex<Option<(String, Vec<u8>)>>> = Arc::default();
        let shared = (bodies.clone(), held);
        let url = listen(move |mut client| {
            let upstream = upstream.clone();
            let (bodies, held) = shared.clone();
            async move {
                let Ok(Some((head, body))) = read_request(&mut client).await else {
                    return;
                };
                let matches = body.windows(needle.len()).any(|w| w == needle.as_bytes());
                let seen = bodies.lock().unwrap().len();
                let answer = if matches && seen <= busy {
                    bodies.lock().unwrap().push(body.clone());
                    if seen == 0 {
                        *held.lock().unwrap() = Some((head.clone(), body.clone()));
                    }
                    let first = if seen == busy {
                        held.lock().unwrap().take()
                    } else {
                        None
                    };
                    match first {
                        None => {
                            let payload = json!({"__type": "com.amazonaws.dynamodb.v20120810#TransactionInProgressException", "message": "injected"}).to_string();
                            reply("400 Bad Request", payload).into_bytes()
                        }
                        Some((head, body)) => {
                            let Ok(answer) = forward(&head, &body, &upstream).await else {
                                return;
                            };
                            answer
                        }
                    }
                } else {
                    let Ok(answer) = forward(&head, &body, &upstream).await else {
                        return;
                    };
                    answer
                };
                let _ = client.write_all(&answer).await;
                let _ = client.shutdown().await;
            }
        })
        .await;
        Self { url, bodies }
    }
}

/// A registration whose transaction DynamoDB is still running when the SDK's retries of it
/// arrive (the first try's answer lost): `TransactionInProgressException`, which the SDK
/// retries as throttling, 3 attempts in all. Read then, the e-mail marker is not there yet,
/// and the request would answer 503 for a customer stored a moment later (500 before that
/// error was known). Asked again with the same token, DynamoDB gives the transaction's
/// outcome: 201, and the code is sent.
#[tokio::test]
async fn a_transaction_still_in_progress_is_asked_again_for_its_outcome() {
    let proxy = InProgressProxy::start(moto_upstream(), "emailNormalized", 3).await;
    let stack = Stack::start_with_dynamodb(Some(proxy.url.clone())).await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let email = "in-progress@example.com";
    let reply = stack
        .register(&tenant, &contract_body(&tenant, email))
        .await;
    assert_eq!(reply.status, 201, "{}", reply);
    assert_eq!(reply.body["data"]["activationCodeDelivery"], "SENT");
    let bodies = proxy.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 4, "the SDK's 3 attempts, then asked again");
    assert!(
        bodies.iter().all(|b| *b == bodies[0]),
        "the same transaction, with the same token"
    );
    let id = reply.body["data"]["id"].as_str().unwrap().to_owned();
    let activated = stack
        .activate(&tenant, &id, email, &stack.code_for(&id))
        .await;
    assert_eq!(activated.status, 200, "{}", activated);
}

/// DynamoDB applies the write but never answers it (nor any retry): the functions' SDK would
/// give up after its 8 s operation timeout (the tests' patient one, later still), too late in
/// a 10 s invocation to read back whether the write was applied: 503 for a registration that
/// was stored, or for a resend whose new code replaced the old one. The write gets the
/// invocation less the time for what follows it; then the read finds it applied, and the code
/// is sent.
#[tokio::test]
async fn a_write_applied_but_never_answered_is_read_back_within_the_invocation() {
    let upstream = moto_upstream();
    for (needle, what) in [
        ("emailNormalized", "registration"),
        ("resendTimes", "resend"),
    ] {
        let proxy = CutOffProxy::start(upstream.clone(), needle).await;
        proxy.stall.store(true, Ordering::SeqCst);
        let stack = Stack::start_with_dynamodb(Some(proxy.url.clone())).await;
        let tenant = stack.tenant_with_demo_hierarchy().await;
        let email = format!("stalled-{what}@example.com");
        let (reply, id) = if what == "registration" {
            proxy.arm(true, true);
            let reply = stack
                .register(&tenant, &contract_body(&tenant, &email))
                .await;
            assert_eq!(reply.status, 201, "{what}: {}", reply);
            let id = reply.body["data"]["id"].as_str().unwrap().to_owned();
            (reply, id)
        } else {
            let id = stack.registered(&tenant, &email).await;
            stack.advance(61);
            proxy.arm(true, true);
            let reply = stack.resend(&tenant, &id, &email).await;
            assert_eq!(reply.status, 202, "{what}: {}", reply);
            (reply, id)
        };
        proxy.arm(false, false);
        assert_eq!(proxy.applied.load(Ordering::SeqCst), 1, "{what}: applied");
        assert_eq!(
            reply.body["data"]["activationCodeDelivery"], "SENT",
            "{what}"
        );
        let request_id = reply.headers["x-request-id"].to_str().unwrap();
        assert!(
            super::support::logged_lines_of(request_id)
                .iter()
                .any(|l| l["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("was applied though its answer was lost"))),
            "{what}: read back"
        );
        let code = stack.code_for(&id);
        let activated = stack.activate(&tenant, &id, &email, &code).await;
        assert_eq!(activated.status, 200, "{what}: {}", activated);
    }
}

/// The same for an activation attempt: counted by DynamoDB, never answered. Cut by the
/// deadline, a right code would answer 503 and its retry 409 (the customer active by then),
/// and a wrong one would use an attempt unseen; read back by the attempt's id, each gets the
/// answer it earned.
#[tokio::test]
async fn an_activation_applied_but_never_answered_is_read_back_within_the_invocation() {
    let proxy = CutOffProxy::start(moto_upstream(), "attemptIds").await;
    proxy.stall.store(true, Ordering::SeqCst);
    let stack = Stack::start_with_dynamodb(Some(proxy.url.clone())).await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let email = "stalled-activation@example.com";
    let id = stack.registered(&tenant, email).await;
    let code = stack.code_for(&id);
    let wrong = super::support::wrong_codes(&code, 1).remove(0);
    for (guess, status) in [(&wrong, 400), (&code, 200)] {
        proxy.arm(true, true);
        let reply = stack.activate(&tenant, &id, email, guess).await;
        proxy.arm(false, false);
        assert_eq!(reply.status, status, "{}", reply);
        let request_id = reply.headers["x-request-id"].to_str().unwrap();
        assert!(
            super::support::logged_lines_of(request_id)
                .iter()
                .any(|l| l["message"] == "the write was applied though its answer was lost"),
            "{status}: read back"
        );
    }
    assert_eq!(proxy.applied.load(Ordering::SeqCst), 2);
    let item = stack.customer_item(&tenant, &id).await.unwrap();
    assert_eq!(item["customerStatus"], "CS_ACTIVE");
    assert_eq!(item["codeAttempts"], 2, "each attempt counted once");
}

#[tokio::test]
async fn an_activation_whose_dynamodb_answer_is_lost_keeps_its_attempt_and_its_outcome() {
    // The SDK retries a write whose answer was lost. Counting the last allowed attempt twice
    // would refuse the right code with 429; a retried switch would read as someone else's
    // activation (409). The write carries the attempt's id, so its retry recognises it.
    let upstream = moto_upstream();
    for wrong in [4, 0] {
        let proxy = LosingProxy::start(upstream.clone(), "attemptIds").await;
        let stack = Stack::start_with_dynamodb(Some(proxy.url.clone())).await;
        let tenant = stack.tenant_with_demo_hierarchy().await;
        let email = format!("lost-after-{wrong}@example.com");
        let id = stack.registered(&tenant, &email).await;
        let code = stack.code_for(&id);
        for guess in super::support::wrong_codes(&code, wrong) {
            let reply = stack.activate(&tenant, &id, &email, &guess).await;
            assert_eq!(reply.status, 400, "{wrong}: {}", reply);
        }
        proxy.armed.store(true, Ordering::SeqCst);
        let reply = stack.activate(&tenant, &id, &email, &code).await;
        assert_eq!(
            proxy.lost.load(Ordering::SeqCst),
            1,
            "{wrong}: an answer was lost"
        );
        assert_eq!(reply.status, 200, "{wrong}: {}", reply);
        let item = stack.customer_item(&tenant, &id).await.unwrap();
        assert_eq!(item["customerStatus"], "CS_ACTIVE", "{wrong}");
        assert_eq!(
            item["codeAttempts"],
            wrong + 1,
            "{wrong}: the right code counted once"
        );
        assert_eq!(
            item["attemptIds"].as_array().map(Vec::len),
            Some(wrong + 1),
            "{wrong}"
        );
        // A wrong code whose answer is lost is counted once, and still answered 400.
        if wrong == 0 {
            let other = stack.registered(&tenant, "lost-wrong@example.com").await;
            let guess = super::support::wrong_codes(&stack.code_for(&other), 1).remove(0);
            proxy.armed.store(true, Ordering::SeqCst);
            let reply = stack
                .activate(&tenant, &other, "lost-wrong@example.com", &guess)
                .await;
            assert_eq!(proxy.lost.load(Ordering::SeqCst), 2);
            assert_eq!(reply.status, 400, "{}", reply);
            assert_eq!(reply.body["data"]["attemptsRemaining"], 4);
            let item = stack.customer_item(&tenant, &other).await.unwrap();
            assert_eq!(item["codeAttempts"], 1);
        }
    }
}

#[tokio::test]
async fn a_resend_whose_dynamodb_answer_is_lost_still_sends_its_code() {
    // The SDK retries the new code's write whose answer was lost; the retry fails its version
    // condition against the write itself. Taken for another resend's, it answered 429 after the
    // old code was replaced and the new one never sent: no working code at all.
    let upstream = moto_upstream();
    let proxy = LosingProxy::start(upstream, "resendTimes").await;
    let stack = Stack::start_with_dynamodb(Some(proxy.url.clone())).await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let email = "lost-resend@example.com";
    let id = stack.registered(&tenant, email).await;
    stack.advance(61);
    proxy.armed.store(true, Ordering::SeqCst);
    let reply = stack.resend(&tenant, &id, email).await;
    assert_eq!(proxy.lost.load(Ordering::SeqCst), 1, "an answer was lost");
    assert_eq!(reply.status, 202, "{}", reply);
    assert_eq!(reply.body["data"]["activationCodeDelivery"], "SENT");
    assert_eq!(stack.mail().len(), 2, "the new code was sent");
    let activated = stack
        .activate(&tenant, &id, email, &stack.code_for(&id))
        .await;
    assert_eq!(activated.status, 200, "{}", activated);
}

#[tokio::test]
async fn a_keyed_registration_whose_claim_answer_is_lost_still_registers_once() {
    // The SDK retries the Idempotency-Key claim whose answer was lost after moto applied it.
    // The retry meets the claim it made itself: read as a twin's, it answered 409
    // REQUEST_IN_PROGRESS to its own request (and the key stayed locked for a minute).
    let upstream = moto_upstream();
    let proxy = LosingProxy::start(upstream, CLAIM_PUT).await;
    let stack = Stack::start_with_dynamodb(Some(proxy.url.clone())).await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let body = contract_body(&tenant, "lost-claim@example.com");
    proxy.armed.store(true, Ordering::SeqCst);
    let reply = stack.register_with_key(&tenant, "lost-claim", &body).await;
    assert_eq!(proxy.lost.load(Ordering::SeqCst), 1, "an answer was lost");
    assert_eq!(reply.status, 201, "{}", reply);
    let replay = stack.register_with_key(&tenant, "lost-claim", &body).await;
    assert_eq!(replay.status, 201, "{}", replay);
    assert_eq!(replay.body["data"]["id"], reply.body["data"]["id"]);
    let items = stack.items_of(&tenant).await;
    assert_eq!(
        items.iter().filter(|i| i["SK"] == "CUSTOMER").count(),
        1,
        "{items:#?}"
    );
}

#[tokio::test]
async fn under_injected_faults_every_answer_is_designed_and_no_write_is_partial() {
    let counts = Arc::new(FaultCounts::default());
    let upstream = moto_upstream();
    let proxy = start_proxy(upstream, 0x5eed_1234_abcd, counts.clone()).await;
    // A generous deadline: a request cut by it after its write reached moto would be a 503
    // that wrote, which the faults here never cause (they strike before moto).
    let stack = Stack::start_with(Some(proxy), Duration::from_secs(120)).await;
    let tenant = stack.tenant_with_demo_hierarchy().await;

    let mut outcomes: Vec<(String, Option<String>, u16)> = Vec::new();
    for i in 0..40 {
        let email = format!("fault-{i}@example.com");
        let body = contract_body(&tenant, &email);
        let key = (i % 2 == 0).then(|| format!("fault-key-{i}"));
        let reply = match &key {
            Some(key) => stack.register_with_key(&tenant, key, &body).await,
            None => stack.register(&tenant, &body).await,
        };
        assert!(
            matches!(reply.status, 201 | 503),
            "{email}: {} {}",
            reply.status,
            reply.body
        );
        if reply.status == 503 {
            assert_eq!(reply.body["data"]["error"], "SERVICE_UNAVAILABLE");
            assert!(reply.headers.contains_key("retry-after"));
            assert!(
                !reply.body.to_string().contains("Exception"),
                "no internals in a 5xx"
            );
        }
        outcomes.push((email, key, reply.status));
    }
    let unavailable = outcomes.iter().filter(|o| o.2 == 503).count();
    // Retried with their keys, the failed keyed requests finish exactly once.
    for (email, key, status) in outcomes.iter_mut() {
        let Some(key) = key else { continue };
        let mut tries = 0;
        while (*status == 503 || *status == 409) && tries < 10 {
            let reply = stack
                .register_with_key(&tenant, key, &contract_body(&tenant, email))
                .await;
            *status = reply.status;
            if reply.status == 409 {
                // A claim whose release was itself lost to a fault: wait out its lock.
                assert_eq!(
                    reply.body["data"]["error"], "REQUEST_IN_PROGRESS",
                    "{}",
                    reply.body
                );
                stack.advance(61);
            }
            tries += 1;
        }
        assert_eq!(*status, 201, "{email}: a keyed retry completes");
    }

    let items = stack.items_of(&tenant).await;
    let customers = |email: &str| {
        items
            .iter()
            .filter(|i| i["SK"] == "CUSTOMER" && i["emailNormalized"] == email)
            .count()
    };
    let markers = |email: &str| {
        items
            .iter()
            .filter(|i| {
                i["SK"] == "EMAIL"
                    && i["PK"]
                        .as_str()
                        .unwrap()
                        .ends_with(&format!("#EMAIL#{email}"))
            })
            .count()
    };
    for (email, _, status) in &outcomes {
        let expected = usize::from(*status == 201);
        assert_eq!(
            customers(email),
            expected,
            "{email} ({status}): customer items"
        );
        assert_eq!(markers(email), expected, "{email} ({status}): e-mail items");
    }
    eprintln!(
        "fault injection: {} DynamoDB requests, {} faults injected ({} dropped, {} HTTP 500, {} throttled, {} delayed); {} registrations, {} answered 503 (keyed ones then retried to 201)",
        counts.requests.load(Ordering::SeqCst),
        counts.injected(),
        counts.dropped.load(Ordering::SeqCst),
        counts.server_errors.load(Ordering::SeqCst),
        counts.throttled.load(Ordering::SeqCst),
        counts.delayed.load(Ordering::SeqCst),
        outcomes.len(),
        unavailable,
    );
    assert!(
        counts.injected() >= 20,
        "the run must actually inject faults"
    );
}

/// A DynamoDB that accepts connections and reads requests but never answers.
async fn start_stalling_proxy() -> String {
    listen(|mut client| async move {
        let mut buf = [0u8; 8192];
        while client.read(&mut buf).await.is_ok_and(|n| n > 0) {}
    })
    .await
}

/// Lambda stops a function at its timeout without an answer, and a request's DynamoDB calls in
/// a row may together outlast it (each is allowed the SDK's 8 s operation timeout). Each route
/// answers 503 with `Retry-After` before its invocation's deadline instead, and writes nothing.
/// Without the deadline the answer waits for the SDK's timeouts (8 s with the functions',
/// minutes with the tests' patient client), and no line says the deadline cut it.
#[tokio::test]
async fn requests_outlasting_their_invocation_are_answered_503_before_the_deadline() {
    let timeout = Duration::from_secs(1);
    let stack = Stack::start_with(Some(start_stalling_proxy().await), timeout).await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let token = stack.token(&tenant, None);
    let customer = uuid::Uuid::new_v4();
    let requests = [
        (
            super::support::REGISTRATION.to_owned(),
            contract_body(&tenant, "late@example.com").to_string(),
            "POST /registration",
        ),
        (
            format!("/api/v2.1/customer/individual/{customer}/activation"),
            json!({"userId": "late@example.com", "code": "12345678"}).to_string(),
            "POST /{customerId}/activation",
        ),
        (
            format!("/api/v2.1/customer/individual/{customer}/activation/code"),
            json!({"userId": "late@example.com"}).to_string(),
            "POST /{customerId}/activation/code",
        ),
    ];
    for (path, body, route) in requests {
        let reply = stack.post_raw(&path, &token, &tenant, &body).await;
        assert_eq!(reply.status, 503, "{path}: {}", reply);
        assert_eq!(reply.body["data"]["error"], "SERVICE_UNAVAILABLE", "{path}");
        assert!(reply.headers.get("retry-after").is_some(), "{path}");
        // The line saying why (the deadline came, or too little was left to start a write)
        // carries the request's ids, as its last line does.
        let request_id = reply.headers["x-request-id"].to_str().unwrap();
        let lines = super::support::logged_lines_of(request_id);
        let why = lines
            .iter()
            .find(|l| {
                l["message"] == "the invocation's deadline came before the request finished"
                    || l["message"] == "too little of the invocation's time left to start a write"
            })
            .unwrap_or_else(|| panic!("{path}: no line saying why in its span: {lines:?}"));
        assert_eq!(why["span"]["tenant_id"], tenant.as_str(), "{why}");
        assert_eq!(why["span"]["route"], route, "{why}");
    }
    let lookup = stack
        .get(&super::support::hierarchy_path(&tenant), &tenant, None)
        .await;
    assert_eq!(lookup.status, 503, "{}", lookup);
    let request_id = lookup.headers["x-request-id"].to_str().unwrap();
    assert!(
        super::support::logged_lines_of(request_id)
            .iter()
            .any(|l| l["message"] == "the invocation's deadline came before the request finished"),
        "the lookup was cut by its deadline"
    );
    assert!(stack.items_of(&tenant).await.is_empty());
}

/// Forwards every request to moto after `delay`.
async fn start_slow_proxy(upstream: String, delay: Duration) -> String {
    listen(move |mut client| {
        let upstream = upstream.clone();
        async move {
            let Ok(Some((head, body))) = read_request(&mut client).await else {
                return;
            };
            tokio::time::sleep(delay).await;
            if let Ok(answer) = forward(&head, &body, &upstream).await {
                let _ = client.write_all(&answer).await;
                let _ = client.shutdown().await;
            }
        }
    })
    .await
}

/// Two resends at once when only one is left today: the one that loses the race is told to
/// wait for the day's window, not for the minute. DynamoDB answering after 400 ms makes both
/// read the customer before either writes, so the loser's write fails its condition.
#[tokio::test]
async fn a_resend_that_loses_a_race_is_told_the_real_wait() {
    let upstream = moto_upstream();
    let proxy = start_slow_proxy(upstream, Duration::from_millis(400)).await;
    let stack = Stack::start_with_dynamodb(Some(proxy)).await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let email = "racing-resends@example.com";
    let id = stack.registered(&tenant, email).await;
    for _ in 0..4 {
        stack.advance(61);
        assert_eq!(stack.resend(&tenant, &id, email).await.status, 202);
    }
    stack.advance(61);
    let updates = || {
        stack
            .dynamodb_actions()
            .into_iter()
            .filter(|(function, action, _)| {
                *function == "ActivationFunction" && action == "dynamodb:UpdateItem"
            })
            .count()
    };
    let before = updates();
    let replies =
        futures::future::join_all((0..2).map(|_| stack.resend(&tenant, &id, email))).await;
    assert_eq!(
        updates() - before,
        2,
        "both resends read before either wrote, and both tried their write"
    );
    let mut statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [202, 429], "one resend is left today");
    let refused = replies.iter().find(|r| r.status == 429).unwrap();
    let retry: i64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        retry,
        86_400 - 4 * 61,
        "until the first of today's five resends is a day old"
    );
}

/// A put of an Idempotency-Key claim can reach DynamoDB after its request gave the claim up:
/// an SDK attempt still on its way when the claim was released and the request answered 503.
/// Released by deleting the record, the claim was taken again by such a put, and every retry
/// with the key got 409 `REQUEST_IN_PROGRESS` for the lock's 60 s. Released by a tombstone
/// that a claim started later may take and no earlier one may, the key's retry registers at
/// once: also after a second request's claim was released too (a tombstone naming only the
/// last claim's token let the first request's put through).
#[tokio::test]
async fn a_claim_arriving_after_its_release_does_not_take_the_key() {
    let proxy = CutOffProxy::start(moto_upstream(), CLAIM_PUT).await;
    proxy.stall.store(true, Ordering::SeqCst);
    proxy.hold.store(true, Ordering::SeqCst);
    let stack = Stack::start_with_dynamodb(Some(proxy.url.clone())).await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let body = contract_body(&tenant, "late-claim@example.com");
    proxy.arm(true, false);
    for attempt in ["first", "second"] {
        let reply = stack.register_with_key(&tenant, "late-claim", &body).await;
        assert_eq!(reply.status, 503, "{attempt}: {}", reply);
        // The stack's clock stands still; the retry comes a second later, as it would.
        stack.advance(1);
    }
    proxy.arm(false, false);
    assert_eq!(
        proxy.applied.load(Ordering::SeqCst),
        0,
        "no claim reached moto"
    );

    let late = proxy.deliver_held().await;
    let tokens: std::collections::BTreeSet<_> = late
        .iter()
        .map(|(put, _)| put["Item"]["token"]["S"].as_str().expect("a claim's token"))
        .collect();
    assert_eq!(tokens.len(), 2, "both requests' claim puts were held");
    for (_, answer) in &late {
        assert!(
            answer.contains("ConditionalCheckFailedException"),
            "a put of the released claim is refused: {answer}"
        );
    }
    let retry = stack.register_with_key(&tenant, "late-claim", &body).await;
    assert_eq!(retry.status, 201, "{}", retry);
    assert!(retry.headers.get("idempotent-replayed").is_none());
    let replay = stack.register_with_key(&tenant, "late-claim", &body).await;
    assert_eq!(replay.status, 201, "{}", replay);
    assert_eq!(replay.body["data"]["id"], retry.body["data"]["id"]);
}

/// The same for the registration's transaction, which completes the claim: sent but never
/// answered, found not applied by the read-back, answered 503 and the claim released, then
/// applied after all. On a deleted record its completion's condition failed and cancelled the
/// transaction; on the tombstone it must too, or a customer nobody was told about (and sent
/// no code) would be written, and the key's retry replay its 201.
#[tokio::test]
async fn a_transaction_arriving_after_its_claim_was_released_writes_nothing() {
    let proxy = CutOffProxy::start(moto_upstream(), "emailNormalized").await;
    proxy.hold.store(true, Ordering::SeqCst);
    let stack = Stack::start_with_dynamodb(Some(proxy.url.clone())).await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let body = contract_body(&tenant, "late-write@example.com");
    proxy.arm(true, false);
    let reply = stack.register_with_key(&tenant, "late-write", &body).await;
    proxy.arm(false, false);
    assert_eq!(reply.status, 503, "{}", reply);

    let late = proxy.deliver_held().await;
    assert!(!late.is_empty(), "the transaction's tries were held");
    for (_, answer) in &late {
        assert!(
            answer.contains("TransactionCanceledException"),
            "a transaction of the released claim is cancelled: {answer}"
        );
    }
    assert!(stack.mail().is_empty(), "nothing sent");
    let retry = stack.register_with_key(&tenant, "late-write", &body).await;
    assert_eq!(retry.status, 201, "{}", retry);
    assert!(retry.headers.get("idempotent-replayed").is_none());
    let items = stack.items_of(&tenant).await;
    assert_eq!(
        items.iter().filter(|i| i["SK"] == "CUSTOMER").count(),
        1,
        "{items:#?}"
    );
}

/// A request that could not finish its write before its deadline does not start it: cut
/// after the write, it would answer 503 for a registration that was done (and a retry would
/// meet 409 or a replay). With DynamoDB answering after 1.2 s and an 8 s invocation, the
/// keyed registration claims its key with time to spare (7.75 s left, 6 s needed) but reaches
/// its transaction with less than the 6 s a write needs (~5.3 s): 503, the claim released,
/// nothing written. The same request with time enough registers once.
#[tokio::test]
async fn a_write_that_could_not_finish_before_the_deadline_is_not_started() {
    let upstream = moto_upstream();
    let slow = start_slow_proxy(upstream, Duration::from_millis(1200)).await;
    let stack = Stack::start_with(Some(slow.clone()), Duration::from_secs(8)).await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let body = contract_body(&tenant, "no-time@example.com");
    let reply = stack.register_with_key(&tenant, "no-time", &body).await;
    let calls: Vec<String> = stack
        .dynamodb_actions()
        .into_iter()
        .filter(|(function, _, key)| {
            *function == "RegistrationFunction" && key.contains("#IDEMPOTENCY#")
        })
        .map(|(_, action, _)| action)
        .collect();
    assert_eq!(
        calls,
        ["dynamodb:PutItem", "dynamodb:PutItem"],
        "the key claimed, then released: the check before the transaction refused it"
    );
    assert_eq!(reply.status, 503, "{}", reply);
    assert_eq!(reply.body["data"]["error"], "SERVICE_UNAVAILABLE");
    let items = stack.items_of(&tenant).await;
    assert_eq!(
        items
            .iter()
            .map(|i| (i["entityType"].as_str(), i["releasedAt"].is_number()))
            .collect::<Vec<_>>(),
        [(Some("IDEMPOTENCY"), true)],
        "nothing written, the claim released: {items:#?}"
    );

    let roomy = Stack::start_beside(&stack, Some(slow), Duration::from_secs(30)).await;
    let retry = roomy.register_with_key(&tenant, "no-time", &body).await;
    assert_eq!(retry.status, 201, "{}", retry);
    assert!(retry.headers.get("idempotent-replayed").is_none());
}

/// The same for an Idempotency-Key's claim: applied by DynamoDB, never answered. Cut by the
/// deadline, the request would answer 503 with the key locked for its 60 s, and every retry
/// with it would get 409 `REQUEST_IN_PROGRESS` until then. Bounded like any write, the claim
/// is released by its token before the 503, and the retry registers.
#[tokio::test]
async fn a_claim_applied_but_never_answered_is_released_within_the_invocation() {
    let proxy = CutOffProxy::start(moto_upstream(), CLAIM_PUT).await;
    proxy.stall.store(true, Ordering::SeqCst);
    let stack = Stack::start_with_dynamodb(Some(proxy.url.clone())).await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let body = contract_body(&tenant, "stalled-claim@example.com");
    proxy.arm(true, true);
    let reply = stack
        .register_with_key(&tenant, "stalled-claim", &body)
        .await;
    proxy.arm(false, false);
    assert_eq!(reply.status, 503, "{}", reply);
    assert_eq!(
        proxy.applied.load(Ordering::SeqCst),
        1,
        "the claim reached moto"
    );
    assert!(stack.mail().is_empty(), "nothing registered, nothing sent");
    let retry = stack
        .register_with_key(&tenant, "stalled-claim", &body)
        .await;
    assert_eq!(retry.status, 201, "{}", retry);
    assert_eq!(retry.body["data"]["activationCodeDelivery"], "SENT");
}
