//! A counting HTTP/1.1 forwarder between the functions' DynamoDB client and moto: every
//! request the SDK sends is recorded (its `X-Amz-Target` and the time moto took), so round
//! trips are counted through the SDK rather than assumed. Connections stay alive on both sides
//! (as the SDK's would against DynamoDB): each client connection has its own connection to
//! moto, and answers are framed by their length, never by closing (werkzeug closes a
//! `connection: close` socket ~10 ms after its answer, which once inflated every call here).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One DynamoDB request seen by the proxy.
#[derive(Debug, Clone)]
pub struct Call {
    /// The operation, e.g. `TransactWriteItems`.
    pub operation: String,
    /// Time spent waiting for moto.
    pub upstream: Duration,
}

#[derive(Clone)]
pub struct Proxy {
    url: String,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Proxy {
    /// Starts the proxy in front of `upstream` (`host:port`).
    pub async fn start(upstream: String) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let calls = Arc::new(Mutex::new(Vec::new()));
        let recorded = calls.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let _ = client.set_nodelay(true);
                let (upstream, calls) = (upstream.clone(), recorded.clone());
                tokio::spawn(async move {
                    if let Err(e) = serve(client, &upstream, &calls).await {
                        eprintln!("bench proxy: {e:#}");
                    }
                });
            }
        });
        Ok(Self { url, calls })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The calls since the last `take`.
    pub fn take(&self) -> Vec<Call> {
        self.calls
            .lock()
            .map(|mut calls| std::mem::take(&mut *calls))
            .unwrap_or_default()
    }
}

/// One HTTP message: head (start line and headers, without the blank line) and body.
struct Message {
    head: String,
    body: Vec<u8>,
}

impl Message {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The head without the named headers, as lines.
    fn head_without(&self, names: &[&str]) -> Vec<String> {
        self.head
            .lines()
            .enumerate()
            .filter(|(i, line)| {
                *i == 0
                    || !line.split_once(':').is_some_and(|(n, _)| {
                        names.iter().any(|name| n.trim().eq_ignore_ascii_case(name))
                    })
            })
            .map(|(_, line)| line.to_owned())
            .collect()
    }
}

fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

/// Reads one HTTP message (head and `Content-Length` body) from a kept-alive connection; `buf`
/// keeps whatever arrived beyond it. `None` when the peer closed before a message began.
async fn read_message(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> anyhow::Result<Option<Message>> {
    let mut chunk = [0u8; 16 * 1024];
    let end = loop {
        if let Some(i) = head_end(buf) {
            break i;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut message = Message {
        head,
        body: Vec::new(),
    };
    if message
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        anyhow::bail!("chunked bodies are not supported");
    }
    let length: usize = message
        .header("content-length")
        .map(str::parse)
        .transpose()
        .context("content-length")?
        .unwrap_or(0);
    while buf.len() < end + 4 + length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            anyhow::bail!("connection closed inside a body");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    message.body = buf[end + 4..end + 4 + length].to_vec();
    buf.drain(..end + 4 + length);
    Ok(Some(message))
}

/// Reads moto's answer, and whether its connection may carry another request. moto frames
/// every answer with a `Content-Length`; anything else fails the bench loudly.
async fn read_answer(stream: &mut TcpStream) -> anyhow::Result<(Message, bool)> {
    let answer = read_message(stream, &mut Vec::new())
        .await?
        .context("moto closed the connection before answering")?;
    anyhow::ensure!(
        answer.header("content-length").is_some(),
        "moto answered without a Content-Length"
    );
    let reusable = !answer.head.starts_with("HTTP/1.0")
        && !answer
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
    Ok((answer, reusable))
}

/// Sends one request to moto on the client's upstream connection (opening it if needed) and
/// returns the answer re-framed with a `Content-Length`.
async fn forward(
    upstream: &str,
    connection: &mut Option<TcpStream>,
    request: &Message,
) -> anyhow::Result<Vec<u8>> {
    let mut head = request.head_without(&["connection"]);
    head.push("connection: keep-alive".into());
    let mut bytes = head.join("\r\n").into_bytes();
    bytes.extend_from_slice(b"\r\n\r\n");
    bytes.extend_from_slice(&request.body);
    let mut server = match connection.take() {
        Some(server) => server,
        None => {
            let server = TcpStream::connect(upstream)
                .await
                .with_context(|| format!("connect {upstream}"))?;
            server.set_nodelay(true)?;
            server
        }
    };
    server.write_all(&bytes).await?;
    let (answer, reusable) = read_answer(&mut server).await?;
    if reusable {
        *connection = Some(server);
    }
    let mut head = answer.head_without(&["connection", "content-length", "transfer-encoding"]);
    if let Some(status) = head.first_mut()
        && let Some(rest) = status.strip_prefix("HTTP/1.0")
    {
        *status = format!("HTTP/1.1{rest}");
    }
    head.push(format!("content-length: {}", answer.body.len()));
    let mut out = head.join("\r\n").into_bytes();
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(&answer.body);
    Ok(out)
}

async fn serve(
    mut client: TcpStream,
    upstream: &str,
    calls: &Mutex<Vec<Call>>,
) -> anyhow::Result<()> {
    let mut buf = Vec::new();
    let mut connection = None;
    while let Some(request) = read_message(&mut client, &mut buf).await? {
        let operation = request
            .header("x-amz-target")
            .map(|t| t.rsplit('.').next().unwrap_or(t).to_owned())
            .unwrap_or_else(|| "(no X-Amz-Target)".into());
        let started = Instant::now();
        let answer = forward(upstream, &mut connection, &request).await?;
        if let Ok(mut calls) = calls.lock() {
            calls.push(Call {
                operation,
                upstream: started.elapsed(),
            });
        }
        client.write_all(&answer).await?;
    }
    Ok(())
}
