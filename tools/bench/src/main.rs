//! `make bench`'s harness. Runs the release Lambda binaries (and the `hello` baseline) on a
//! local Lambda Runtime API emulator, with their DynamoDB client pointed at a counting proxy in
//! front of moto, and prints one table: init time, cold penalty, DynamoDB round trips per
//! request, the CPU path (criterion's median, passed in by scripts/bench.sh), Argon2 cost and
//! binary sizes.
//!
//!   onboarding-bench --dynamodb 127.0.0.1:<moto port> --table <table>
//!       [--bin-dir target/release] [--events events] [--work-dir .local/bench]
//!       [--rounds 15] [--init-samples 60] [--cpu-median-ns <ns>] [--function-cpu <cpu>]
//!
//! BENCH_VERBOSE=1 prints every init and invocation with its DynamoDB calls to stderr.

mod emulator;
mod proxy;
mod report;

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};
use shared::store::keys;
use tokio::process::Child;

use emulator::{Emulator, Kind};
use proxy::{Call, Proxy};
use report::{Row, Status, median, ms};

const TENANT: &str = "97e7ff29-15f3-49ef-9681-3bbfcce4f6cd";
const CONTRACT_EMAIL: &str = "marcus.jensen@example.com";
const HELLO: &str = "hello";
/// `hello` on tokio's single-threaded runtime, as the functions run.
const HELLO_CURRENT_THREAD: &str = "hello-current-thread";
const FUNCTIONS: [&str; 3] = ["categorization", "registration", "activation"];
/// The functions with a hierarchy cache.
const CACHED: [&str; 2] = ["categorization", "registration"];
const INIT_RATIO_LIMIT: f64 = 1.5;
const COLD_PENALTY_LIMIT_MS: f64 = 3.0;
const CPU_LIMIT_MS: f64 = 0.3;
const ARGON2_SAMPLES: usize = 10;
const INIT_TIMEOUT: Duration = Duration::from_secs(30);
const INVOKE_TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

struct Options {
    bin_dir: PathBuf,
    dynamodb: String,
    table: String,
    events: PathBuf,
    work_dir: PathBuf,
    rounds: usize,
    /// Fresh processes per binary timed for init alone (killed at their first poll).
    init_samples: usize,
    cpu_median_ns: Option<f64>,
    /// The CPU the functions under test run on, alone (Linux; `--function-cpu`).
    function_cpu: Option<usize>,
}

impl Options {
    fn parse() -> anyhow::Result<Self> {
        let mut o = Options {
            bin_dir: "target/release".into(),
            dynamodb: String::new(),
            table: String::new(),
            events: "events".into(),
            work_dir: ".local/bench".into(),
            rounds: 15,
            init_samples: 60,
            cpu_median_ns: None,
            function_cpu: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let value = args
                .next()
                .with_context(|| format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--bin-dir" => o.bin_dir = value.into(),
                "--dynamodb" => {
                    o.dynamodb = value
                        .trim_start_matches("http://")
                        .trim_end_matches('/')
                        .into()
                }
                "--table" => o.table = value,
                "--events" => o.events = value.into(),
                "--work-dir" => o.work_dir = value.into(),
                "--rounds" => o.rounds = value.parse().context("--rounds")?,
                "--init-samples" => o.init_samples = value.parse().context("--init-samples")?,
                "--cpu-median-ns" => {
                    o.cpu_median_ns = Some(value.parse().context("--cpu-median-ns")?)
                }
                "--function-cpu" => o.function_cpu = Some(value.parse().context("--function-cpu")?),
                other => bail!("unknown option {other}"),
            }
        }
        ensure!(!o.dynamodb.is_empty(), "--dynamodb <host:port> is required");
        ensure!(!o.table.is_empty(), "--table <name> is required");
        ensure!(o.rounds >= 1, "--rounds must be at least 1");
        ensure!(o.init_samples >= 1, "--init-samples must be at least 1");
        Ok(o)
    }
}

/// The API Gateway v2 events the functions are driven with.
struct Events {
    categorization: String,
    registration: Value,
    activation: Value,
}

impl Events {
    fn load(dir: &Path) -> anyhow::Result<Self> {
        let read = |name: &str| -> anyhow::Result<String> {
            std::fs::read_to_string(dir.join(name)).with_context(|| format!("reading {name}"))
        };
        let events = Self {
            categorization: read("categorization-get-hierarchy.json")?,
            registration: serde_json::from_str(&read("registration-contract-example.json")?)?,
            activation: serde_json::from_str(&read("activation-activate.json")?)?,
        };
        let categorization: Value = serde_json::from_str(&events.categorization)?;
        for event in [&categorization, &events.registration, &events.activation] {
            let claims = &event["requestContext"]["authorizer"]["jwt"]["claims"];
            ensure!(
                claims["tenant_id"] == TENANT && claims["scope"].is_string(),
                "the events must carry tenant_id {TENANT} and the scopes"
            );
        }
        Ok(events)
    }

    /// The contract's example registration under a new e-mail, optionally with a key.
    fn registration(&self, email: &str, idempotency_key: Option<&str>) -> String {
        let mut event = self.registration.clone();
        let body = event["body"]
            .as_str()
            .unwrap_or_default()
            .replace(CONTRACT_EMAIL, email);
        event["body"] = Value::String(body);
        if let Some(key) = idempotency_key {
            event["headers"]["idempotency-key"] = Value::String(key.to_owned());
        }
        event.to_string()
    }

    /// The activation of a registered customer with the code from the mailbox.
    fn activation(&self, customer: &Registered) -> String {
        let mut event = self.activation.clone();
        let path = format!("{}/{}/activation", shared::API_BASE, customer.id);
        event["rawPath"] = Value::String(path.clone());
        event["requestContext"]["http"]["path"] = Value::String(path);
        event["pathParameters"]["customerId"] = Value::String(customer.id.clone());
        event["body"] =
            Value::String(json!({"userId": customer.email, "code": customer.code}).to_string());
        event.to_string()
    }
}

/// A customer registered through the registration function, ready to be activated.
struct Registered {
    id: String,
    email: String,
    code: String,
}

/// One answered invocation.
struct Invocation {
    elapsed: Duration,
    /// The DynamoDB requests the proxy forwarded.
    calls: Vec<Call>,
    /// The function's own count of its DynamoDB requests: the SDK interceptor's
    /// `DynamoDbRequests` in the invocation's EMF document (`None`: no document found).
    sdk_calls: Option<u64>,
    body: Value,
}

impl Invocation {
    fn upstream(&self) -> Duration {
        self.calls.iter().map(|c| c.upstream).sum()
    }
}

/// One function process on its own emulator.
struct Running {
    name: &'static str,
    child: Child,
    emulator: Emulator,
    proxy: Proxy,
    init: Duration,
    /// The function's stdout and stderr, and how much of it has been read.
    log: PathBuf,
    log_read: u64,
}

impl Running {
    async fn invoke(&mut self, event: String, status: u16) -> anyhow::Result<Invocation> {
        let between = self.proxy.take();
        ensure!(
            between.is_empty(),
            "{}: {} DynamoDB requests outside an invocation",
            self.name,
            between.len()
        );
        let outcome = self
            .emulator
            .invoke(event, &mut self.child, INVOKE_TIMEOUT)
            .await
            .with_context(|| format!("{}: invocation", self.name))?;
        let calls = self.proxy.take();
        if std::env::var_os("BENCH_VERBOSE").is_some() {
            let detail: Vec<String> = calls
                .iter()
                .map(|c| format!("{} {:.2} ms", c.operation, ms(c.upstream)))
                .collect();
            eprintln!(
                "  {} {:.2} ms [{}]",
                self.name,
                ms(outcome.elapsed),
                detail.join(", ")
            );
        }
        ensure!(
            outcome.kind == Kind::Response,
            "{}: the function reported an error: {}",
            self.name,
            outcome.body
        );
        let response: Value = serde_json::from_str(&outcome.body)
            .with_context(|| format!("{}: response is not JSON", self.name))?;
        ensure!(
            response["statusCode"] == status,
            "{}: expected HTTP {status}, got {}",
            self.name,
            outcome.body
        );
        let body = response["body"]
            .as_str()
            .and_then(|b| serde_json::from_str(b).ok())
            .unwrap_or(Value::Null);
        let sdk_calls = self.sdk_calls()?;
        Ok(Invocation {
            elapsed: outcome.elapsed,
            calls,
            sdk_calls,
            body,
        })
    }

    /// `DynamoDbRequests` of the EMF documents the function has written since the last call
    /// (it flushes an invocation's document before it answers).
    fn sdk_calls(&mut self) -> anyhow::Result<Option<u64>> {
        use std::io::{Read as _, Seek as _};
        let mut file = std::fs::File::open(&self.log)?;
        file.seek(std::io::SeekFrom::Start(self.log_read))?;
        let mut text = String::new();
        self.log_read += file.read_to_string(&mut text)? as u64;
        let mut found = None;
        for line in text.lines().filter(|l| l.starts_with(r#"{"_aws""#)) {
            let document: Value = serde_json::from_str(line)?;
            let count = document["DynamoDbRequests"].as_u64().unwrap_or(0);
            found = Some(found.unwrap_or(0) + count);
        }
        Ok(found)
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

struct Bench {
    options: Options,
    proxy: Proxy,
    /// moto directly (not through the proxy), to delete measured customers.
    moto: aws_sdk_dynamodb::Client,
    events: Events,
    mailbox: PathBuf,
    run_id: String,
    sequence: usize,
}

/// What one cold start of a function gave.
struct ColdRun {
    first: Invocation,
    warm: Vec<Invocation>,
}

impl ColdRun {
    fn warm_median_ms(&self) -> f64 {
        median(self.warm.iter().map(|w| ms(w.elapsed)).collect())
    }

    fn penalty_ms(&self) -> f64 {
        ms(self.first.elapsed) - self.warm_median_ms()
    }

    /// DynamoDB time of the first invocation beyond the warm median.
    fn extra_upstream_ms(&self) -> f64 {
        ms(self.first.upstream()) - median(self.warm.iter().map(|w| ms(w.upstream())).collect())
    }
}

impl Bench {
    fn env(&self, name: &str, runtime_api: &str) -> Vec<(&'static str, String)> {
        let mut env = vec![
            (
                "PATH",
                std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
            ),
            ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_owned()),
            ("AWS_LAMBDA_FUNCTION_NAME", name.to_owned()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024".into()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "1".into()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "bench".into()),
            ("AWS_LAMBDA_LOG_FORMAT", "JSON".into()),
            ("AWS_LAMBDA_LOG_LEVEL", "ERROR".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_DEFAULT_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "bench".into()),
            ("AWS_SECRET_ACCESS_KEY", "bench".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("AWS_ENDPOINT_URL_DYNAMODB", self.proxy.url().to_owned()),
            ("TABLE_NAME", self.options.table.clone()),
            (
                "ACTIVATION_CODE_SECRET",
                "bench-activation-code-secret-0123456789abcdef".into(),
            ),
            ("ACTIVATION_DELIVERY", "mailbox".into()),
            ("LOCAL_MAILBOX", self.mailbox.display().to_string()),
        ];
        env.retain(|(_, v)| !v.is_empty());
        env
    }

    async fn spawn(&self, name: &'static str) -> anyhow::Result<Running> {
        self.spawn_with(name, &[]).await
    }

    /// `spawn` with extra environment (the what-if runs).
    async fn spawn_with(
        &self,
        name: &'static str,
        extra_env: &[(&'static str, String)],
    ) -> anyhow::Result<Running> {
        let binary = self.options.bin_dir.join(name);
        ensure!(binary.exists(), "{} is not built", binary.display());
        let mut emulator = Emulator::start(name).await?;
        let log_path = self.options.work_dir.join(format!("{name}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let mut command = tokio::process::Command::new(&binary);
        command
            .env_clear()
            .envs(self.env(name, &emulator.address()))
            .envs(extra_env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        // A child inherits the CPU mask of the thread that spawns it: this thread is pinned
        // for the spawn only. (A pre_exec hook would make std fork the whole harness instead
        // of posix_spawn, and that copy would count as every function's init.)
        let harness_cpus = match self.options.function_cpu {
            Some(cpu) => Some(cpu_affinity::pin_thread(cpu)?),
            None => None,
        };
        let started = Instant::now();
        let spawned = command.spawn();
        if let Some(cpus) = harness_cpus {
            cpu_affinity::set_thread(&cpus)?;
        }
        let mut child = spawned.with_context(|| format!("spawning {}", binary.display()))?;
        let polled = emulator
            .first_poll(&mut child, INIT_TIMEOUT)
            .await
            .with_context(|| {
                format!("{name}: init (log in {})", self.options.work_dir.display())
            })?;
        let log_read = std::fs::metadata(&log_path)?.len();
        Ok(Running {
            name,
            child,
            emulator,
            proxy: self.proxy.clone(),
            init: polled.duration_since(started),
            log: log_path,
            log_read,
        })
    }

    fn next_email(&mut self) -> String {
        self.sequence += 1;
        format!("bench-{}-{}@example.com", self.run_id, self.sequence)
    }

    /// Registers a new customer and reads its code from the mailbox.
    async fn register(
        &mut self,
        function: &mut Running,
        idempotency_key: Option<&str>,
    ) -> anyhow::Result<(Invocation, Registered)> {
        let email = self.next_email();
        let invocation = function
            .invoke(self.events.registration(&email, idempotency_key), 201)
            .await?;
        let id = invocation.body["data"]["id"]
            .as_str()
            .context("registration: no data.id in the 201")?
            .to_owned();
        let mailbox = std::fs::read_to_string(&self.mailbox).context("reading the mailbox")?;
        let code = mailbox
            .lines()
            .rev()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|m| m["customerId"] == id.as_str())
            .and_then(|m| m["code"].as_str().map(str::to_owned))
            .with_context(|| format!("no activation code for {id} in the mailbox"))?;
        Ok((invocation, Registered { id, email, code }))
    }

    /// `cold_run`, redone once if it broke. moto sometimes stalls for seconds (its
    /// TransactWriteItems deep-copies the table it writes); the SDK's attempt timeout then retries a
    /// transaction moto did commit, and as moto ignores `ClientRequestToken` the retry answers
    /// 409. Such a run measures moto, not the function: it is reported and redone.
    async fn cold_run_retried(
        &mut self,
        name: &'static str,
        customers: &mut Vec<Registered>,
        extra_env: &[(&'static str, String)],
    ) -> anyhow::Result<ColdRun> {
        match self
            .cold_run(name, warm_count(name), customers, extra_env)
            .await
        {
            Ok(run) => Ok(run),
            Err(e) => {
                eprintln!("bench: {name}: run discarded and redone ({e:#})");
                self.cold_run(name, warm_count(name), customers, extra_env)
                    .await
            }
        }
    }

    /// A fresh process: init, the first invocation, then `warm` more of the same request.
    async fn cold_run(
        &mut self,
        name: &'static str,
        warm: usize,
        customers: &mut Vec<Registered>,
        extra_env: &[(&'static str, String)],
    ) -> anyhow::Result<ColdRun> {
        let mut function = self.spawn_with(name, extra_env).await?;
        let mut activated = Vec::new();
        if std::env::var_os("BENCH_VERBOSE").is_some() {
            eprintln!(" {name}: init {:.2} ms", ms(function.init));
        }
        let mut invocations = Vec::with_capacity(warm + 1);
        for _ in 0..=warm {
            let invocation = match name {
                "registration" => {
                    let (invocation, customer) = self.register(&mut function, None).await?;
                    customers.push(customer);
                    invocation
                }
                "activation" => {
                    let customer = customers.pop().context("ran out of registered customers")?;
                    let event = self.events.activation(&customer);
                    let invocation = function.invoke(event, 200).await?;
                    activated.push(customer);
                    invocation
                }
                _ => {
                    function
                        .invoke(self.events.categorization.clone(), 200)
                        .await?
                }
            };
            invocations.push(invocation);
        }
        function.stop().await;
        self.retire(activated).await?;
        self.keep_stock(customers).await?;
        let mut invocations = invocations.into_iter();
        let first = invocations.next().context("no invocation")?;
        Ok(ColdRun {
            first,
            warm: invocations.collect(),
        })
    }
}

impl Bench {
    /// Init alone: `samples` fresh processes per binary, interleaved and killed at their first
    /// poll. Init is a few milliseconds on a shared machine, so its median needs many more
    /// samples than the cold runs (which each cost invocations and moto time) give.
    async fn init_samples(&self, names: &[&'static str]) -> anyhow::Result<Vec<Vec<f64>>> {
        let samples = self.options.init_samples;
        let mut out: Vec<Vec<f64>> = names.iter().map(|_| Vec::with_capacity(samples)).collect();
        for round in 0..samples {
            for k in 0..names.len() {
                let i = (k + round) % names.len();
                // One failed start (a timeout on a busy machine) is redone once, as cold runs are.
                let function = match self.spawn(names[i]).await {
                    Ok(function) => function,
                    Err(e) => {
                        eprintln!("bench: {}: init sample redone ({e:#})", names[i]);
                        self.spawn(names[i]).await?
                    }
                };
                out[i].push(ms(function.init));
                function.stop().await;
            }
        }
        Ok(out)
    }
}

/// The functions get a CPU of their own while moto, the emulator and the proxy share the
/// others (scripts/bench.sh): in AWS, DynamoDB never takes the function's CPU, and on a 2-core
/// machine moto's ~13 ms of Python per hierarchy Query otherwise competes with the
/// registration's Argon2 thread and decides the cold penalty.
mod cpu_affinity {
    use std::io;
    use std::mem::{size_of, zeroed};

    /// Runs the calling thread on `cpu` only; returns its previous mask.
    pub fn pin_thread(cpu: usize) -> io::Result<libc::cpu_set_t> {
        if cpu >= 8 * size_of::<libc::cpu_set_t>() {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        // SAFETY: cpu_set_t is plain data, valid zeroed; sched_getaffinity writes at most
        // size_of::<cpu_set_t>() bytes of it; CPU_SET gets a cpu below the set's capacity.
        let (previous, only) = unsafe {
            let mut previous: libc::cpu_set_t = zeroed();
            if libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut previous) != 0 {
                return Err(io::Error::last_os_error());
            }
            let mut only: libc::cpu_set_t = zeroed();
            libc::CPU_SET(cpu, &mut only);
            (previous, only)
        };
        set_thread(&only)?;
        Ok(previous)
    }

    /// Sets the calling thread's mask.
    pub fn set_thread(cpus: &libc::cpu_set_t) -> io::Result<()> {
        // SAFETY: sched_setaffinity reads size_of::<cpu_set_t>() bytes of `cpus`.
        if unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), cpus) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Queries timed for the "one moto round trip" row, of each kind.
const QUERY_SAMPLES: usize = 30;

impl Bench {
    /// `QUERY_SAMPLES` Queries of partition `pk` (eventually consistent, as a hierarchy
    /// lookup reads) through the proxy, each timed as the proxy times the functions' calls
    /// (its wait for moto: the "DynamoDB" part of a cold penalty), in ms. Each must find at
    /// least `min_items` items.
    async fn query_ms(&self, pk: &str, min_items: usize) -> anyhow::Result<Vec<f64>> {
        let client = moto_client(self.proxy.url().trim_start_matches("http://")).await;
        let mut samples = Vec::with_capacity(QUERY_SAMPLES);
        // The function processes are stopped: nothing else calls through the proxy now.
        self.proxy.take();
        for _ in 0..QUERY_SAMPLES {
            let page = client
                .query()
                .table_name(&self.options.table)
                .key_condition_expression("PK = :pk")
                .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
                .send()
                .await
                .context("timing a Query against moto")?;
            ensure!(
                page.items().len() >= min_items,
                "the timed Query of {pk} found {} items",
                page.items().len()
            );
            let calls = self.proxy.take();
            ensure!(calls.len() == 1, "{} requests for one Query", calls.len());
            samples.push(ms(calls[0].upstream));
        }
        Ok(samples)
    }

    /// Deletes customers the bench is done with (both items), straight from moto. moto's
    /// TransactWriteItems deep-copies the table it writes, so one that kept every measured
    /// customer would make each registration slower than the one before (30 → 50 ms over a
    /// run, with longer garbage-collection stalls) and the cold penalty compares a first
    /// invocation with later ones.
    async fn retire(&self, customers: impl IntoIterator<Item = Registered>) -> anyhow::Result<()> {
        let tenant = shared::domain::TenantId::parse(TENANT).map_err(anyhow::Error::msg)?;
        for customer in customers {
            let email = shared::domain::Email::parse(&customer.email)
                .map_err(anyhow::Error::msg)?
                .normalized();
            for (pk, sk) in [
                keys::customer(&tenant, &customer.id),
                keys::email(&tenant, &email),
            ] {
                self.moto
                    .delete_item()
                    .table_name(&self.options.table)
                    .key(keys::PK, AttributeValue::S(pk))
                    .key(keys::SK, AttributeValue::S(sk.to_owned()))
                    .send()
                    .await
                    .context("deleting a measured customer from moto")?;
            }
        }
        Ok(())
    }

    /// Keeps the newest `STOCK` unactivated customers (enough for two activation runs) and
    /// deletes the rest.
    async fn keep_stock(&self, customers: &mut Vec<Registered>) -> anyhow::Result<()> {
        let surplus = customers.len().saturating_sub(STOCK);
        self.retire(customers.drain(..surplus)).await
    }
}

/// Warm invocations after the first in a registration or activation cold run.
const WRITE_WARM: usize = 8;

/// Registered, not yet activated customers kept for the activation runs: two runs' worth.
const STOCK: usize = 2 * (WRITE_WARM + 1);

fn warm_count(name: &str) -> usize {
    match name {
        "registration" | "activation" => WRITE_WARM,
        _ => 15,
    }
}

/// Most calls seen in any of the invocations, with the operations of that one.
fn most_calls<'a>(invocations: impl IntoIterator<Item = &'a Invocation>) -> (usize, String, usize) {
    let mut worst: Option<&Invocation> = None;
    let mut seen = 0;
    for invocation in invocations {
        seen += 1;
        if worst.is_none_or(|w| invocation.calls.len() > w.calls.len()) {
            worst = Some(invocation);
        }
    }
    let operations = worst
        .map(|w| {
            w.calls
                .iter()
                .map(|c| c.operation.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    (worst.map_or(0, |w| w.calls.len()), operations, seen)
}

/// Whether the functions' own count of their DynamoDB requests (the SDK interceptor behind
/// the `DynamoDbRequests` metric) matches the proxy's, invocation by invocation.
fn sdk_agreement(invocations: &[&Invocation]) -> String {
    let agree = invocations
        .iter()
        .filter(|i| i.sdk_calls == Some(i.calls.len() as u64))
        .count();
    if agree == invocations.len() {
        format!("the SDK's count agrees in all {agree}")
    } else {
        format!(
            "the SDK's count agrees in only {agree} of {}",
            invocations.len()
        )
    }
}

/// A DynamoDB client for moto at `address` (host:port), bypassing the counting proxy.
async fn moto_client(address: &str) -> aws_sdk_dynamodb::Client {
    let aws = shared::store::dynamodb::aws_config_from_env().await;
    let config = aws_sdk_dynamodb::config::Builder::from(&aws)
        .endpoint_url(format!("http://{address}"))
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

async fn run() -> anyhow::Result<()> {
    let options = Options::parse()?;
    std::fs::create_dir_all(&options.work_dir)?;
    let mailbox = std::path::absolute(options.work_dir.join("mailbox.jsonl"))?;
    let _ = std::fs::remove_file(&mailbox);
    for name in [HELLO, HELLO_CURRENT_THREAD].into_iter().chain(FUNCTIONS) {
        let _ = std::fs::remove_file(options.work_dir.join(format!("{name}.log")));
    }
    let proxy = Proxy::start(options.dynamodb.clone()).await?;
    let events = Events::load(&options.events)?;
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let rounds = options.rounds;
    let moto = moto_client(&options.dynamodb).await;
    let mut bench = Bench {
        options,
        proxy,
        events,
        mailbox,
        run_id,
        sequence: 0,
        moto,
    };

    // 0. What a fresh process pays the first time through the registration's CPU path (lazy
    //    statics), measured here before anything else touches it.
    let registration_event = bench.events.registration(CONTRACT_EMAIL, None);
    let first_cpu =
        tokio::task::spawn_blocking(move || first_cpu_path(&registration_event)).await??;

    // 1. Round trips of registration, and the customers the activation runs will activate.
    eprintln!("bench: registering customers (round trips of registration)");
    let mut supplier = bench.spawn("registration").await?;
    let (cold_registration, _) = bench.register(&mut supplier, None).await?;
    let mut warm_registrations = Vec::new();
    let mut customers = Vec::new();
    // A sample for the round-trip rows; all but `STOCK` are deleted right after.
    let needed = (rounds + 2) * (warm_count("activation") + 1);
    let mut broken = 0;
    while customers.len() < needed {
        match bench.register(&mut supplier, None).await {
            Ok((invocation, customer)) => {
                warm_registrations.push(invocation);
                customers.push(customer);
            }
            // A moto stall (see `cold_run_retried`): skip that customer, at most twice.
            Err(e) if broken < 2 => {
                broken += 1;
                eprintln!("bench: registration skipped ({e:#})");
            }
            Err(e) => return Err(e),
        }
    }
    let mut keyed_registrations = Vec::new();
    for i in 0..5 {
        let key = format!("bench-{}-key-{i}", bench.run_id);
        keyed_registrations.push(bench.register(&mut supplier, Some(&key)).await?.0);
    }
    supplier.stop().await;
    bench.keep_stock(&mut customers).await?;

    // 2. Cold starts: a warm-up round (discarded: page cache, moto), then `rounds` rounds, the
    //    order rotating so no function always follows the same one. The functions with a
    //    hierarchy cache run a second time with it off (HIERARCHY_CACHE_TTL_SECONDS=0): their
    //    warm requests then make the cold request's Query too, which isolates what a cold
    //    start itself costs from what a cache miss costs.
    let names: Vec<&'static str> = std::iter::once(HELLO).chain(FUNCTIONS).collect();
    let mut runs: Vec<Vec<ColdRun>> = names.iter().map(|_| Vec::new()).collect();
    let mut uncached: Vec<Vec<ColdRun>> = CACHED.iter().map(|_| Vec::new()).collect();
    let cache_off = [("HIERARCHY_CACHE_TTL_SECONDS", "0".to_owned())];
    for round in 0..=rounds {
        eprintln!("bench: cold-start round {round}/{rounds}");
        for k in 0..names.len() {
            let i = (k + round) % names.len();
            let run = bench
                .cold_run_retried(names[i], &mut customers, &[])
                .await?;
            if round > 0 {
                runs[i].push(run);
            }
        }
        for (i, name) in CACHED.iter().enumerate() {
            let run = bench
                .cold_run_retried(name, &mut customers, &cache_off)
                .await?;
            if round > 0 {
                uncached[i].push(run);
            }
        }
    }

    // 2b. Init alone, many times over: the init rows come from these samples.
    eprintln!(
        "bench: init, {} fresh processes per binary",
        bench.options.init_samples
    );
    let init_names: Vec<&'static str> = names
        .iter()
        .copied()
        .chain([HELLO_CURRENT_THREAD])
        .collect();
    let inits = bench.init_samples(&init_names).await?;

    // 3. Argon2id at the contract's parameters, in this release build.
    eprintln!("bench: Argon2id");
    let argon2_ms = tokio::task::spawn_blocking(|| -> anyhow::Result<Vec<f64>> {
        let password = shared::domain::Password::parse("SecurePass123!", &[])
            .map_err(|p| anyhow::anyhow!("password: {}", p.message()))?;
        let started = Instant::now();
        shared::password::hash_blocking(&password)?;
        let first = ms(started.elapsed());
        std::iter::once(Ok(first))
            .chain((0..ARGON2_SAMPLES).map(|_| {
                let started = Instant::now();
                shared::password::hash_blocking(&password)?;
                Ok(ms(started.elapsed()))
            }))
            .collect()
    })
    .await??;
    let argon2_first_ms = argon2_ms.first().copied().unwrap_or(f64::NAN);
    let argon2_ms = argon2_ms[1..].to_vec();

    // 3b. What one DynamoDB round trip costs on this moto at the least: a Query that finds
    //     nothing, and the demo tenant's hierarchy Query, from the harness's SDK client.
    eprintln!("bench: moto's round trip");
    let demo = shared::domain::TenantId::parse(TENANT).map_err(anyhow::Error::msg)?;
    let nobody = shared::domain::TenantId::parse(&uuid::Uuid::new_v4().to_string())
        .map_err(anyhow::Error::msg)?;
    let empty_query_ms = bench.query_ms(&keys::categorization_pk(&nobody), 0).await?;
    let hierarchy_query_ms = bench.query_ms(&keys::categorization_pk(&demo), 2).await?;

    // 4. The table.
    let mut rows = Vec::new();
    let of = |name: &str| &runs[names.iter().position(|n| *n == name).unwrap_or(0)];
    let init_of =
        |name: &str| inits[init_names.iter().position(|n| *n == name).unwrap_or(0)].clone();
    let init_ms = |name: &str| median(init_of(name));
    let init_samples = bench.options.init_samples;
    let spread = |values: Vec<f64>| {
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        format!("min {min:.2}, max {max:.2}")
    };
    let hello_init = init_ms(HELLO);
    rows.push(Row::info(
        "init: hello-world (baseline)",
        format!("{hello_init:.2} ms"),
        format!(
            "median of {init_samples} fresh processes; {}",
            spread(init_of(HELLO))
        ),
    ));
    let single_threaded = init_ms(HELLO_CURRENT_THREAD);
    rows.push(Row::info(
        "init: hello-world, current_thread runtime",
        format!("{single_threaded:.2} ms"),
        format!(
            "as the functions run; against it {}; {}",
            FUNCTIONS
                .iter()
                .map(|name| format!("{name} {:.2}x", init_ms(name) / single_threaded))
                .collect::<Vec<_>>()
                .join(", "),
            spread(init_of(HELLO_CURRENT_THREAD))
        ),
    ));
    for name in FUNCTIONS {
        let value = init_ms(name);
        rows.push(Row::relative(
            format!("init: {name}"),
            format!("{value:.2} ms"),
            format!("<= {INIT_RATIO_LIMIT}x hello"),
            format!("{hello_init:.2} ms"),
            value / hello_init,
            INIT_RATIO_LIMIT,
            spread(init_of(name)),
        ));
    }
    let penalty = |runs: &[ColdRun]| median(runs.iter().map(ColdRun::penalty_ms).collect());
    let detail = |runs: &[ColdRun]| {
        let first = median(runs.iter().map(|r| ms(r.first.elapsed)).collect());
        let warm = median(runs.iter().map(ColdRun::warm_median_ms).collect());
        let extra = median(runs.iter().map(ColdRun::extra_upstream_ms).collect());
        let rest = median(
            runs.iter()
                .map(|r| r.penalty_ms() - r.extra_upstream_ms())
                .collect(),
        );
        format!(
            "1st {first:.2}, warm {warm:.2} ms; penalty = DynamoDB {extra:+.2} + rest {rest:+.2} ms"
        )
    };
    let hello_penalty = penalty(of(HELLO));
    rows.push(Row::info(
        "cold penalty: hello-world",
        format!("{hello_penalty:.2} ms"),
        detail(of(HELLO)),
    ));
    let cases = FUNCTIONS
        .iter()
        .map(|name| (format!("cold penalty: {name}"), of(name).as_slice()))
        .chain(
            CACHED
                .iter()
                .zip(&uncached)
                .map(|(name, runs)| (format!("cold penalty: {name}, cache off"), runs.as_slice())),
        );
    for (metric, runs) in cases {
        let value = penalty(runs);
        rows.push(Row::absolute(
            metric,
            format!("{value:.2} ms"),
            format!("<= {COLD_PENALTY_LIMIT_MS} ms"),
            format!("{hello_penalty:.2} ms (hello)"),
            value,
            COLD_PENALTY_LIMIT_MS,
            detail(runs),
        ));
    }
    rows.push(Row::info(
        "DynamoDB: one moto round trip, at the least",
        format!("{:.2} ms", median(empty_query_ms.clone())),
        format!(
            "a Query that finds nothing, moto's time as the proxy sees it, median of \
             {QUERY_SAMPLES} ({}); the demo tenant's hierarchy Query {:.2} ms. A first lookup \
             that warm ones answer from the cache pays one Query on top of its cold start (the \
             cache-off row)",
            spread(empty_query_ms),
            median(hierarchy_query_ms)
        ),
    ));

    let round_trips =
        |rows: &mut Vec<Row>, metric: &str, limit: usize, invocations: Vec<&Invocation>| {
            let (calls, operations, seen) = most_calls(invocations.iter().copied());
            let value = if operations.is_empty() {
                calls.to_string()
            } else {
                format!("{calls} ({operations})")
            };
            let note = format!("most in {seen} requests; {}", sdk_agreement(&invocations));
            rows.push(Row::count(metric, value, calls, limit, note));
        };
    let warm_of =
        |name: &str| -> Vec<&Invocation> { of(name).iter().flat_map(|r| r.warm.iter()).collect() };
    let first_of = |name: &str| -> Vec<&Invocation> { of(name).iter().map(|r| &r.first).collect() };
    let mut warm_reg = warm_of("registration");
    warm_reg.extend(warm_registrations.iter());
    round_trips(&mut rows, "DynamoDB calls: warm registration", 1, warm_reg);
    round_trips(
        &mut rows,
        "DynamoDB calls: warm registration + Idempotency-Key",
        2,
        keyed_registrations.iter().collect(),
    );
    let mut cold_reg = first_of("registration");
    cold_reg.push(&cold_registration);
    let (calls, operations, seen) = most_calls(cold_reg);
    rows.push(Row::info(
        "DynamoDB calls: cold registration",
        format!("{calls} ({operations})"),
        format!("hierarchy not cached yet; most in {seen} requests"),
    ));
    round_trips(
        &mut rows,
        "DynamoDB calls: hierarchy lookup (cold)",
        1,
        first_of("categorization"),
    );
    round_trips(
        &mut rows,
        "DynamoDB calls: hierarchy lookup (cached)",
        0,
        warm_of("categorization"),
    );
    let mut activations = warm_of("activation");
    activations.extend(first_of("activation"));
    round_trips(&mut rows, "DynamoDB calls: activation", 1, activations);
    if let Some(row) = rows.last_mut() {
        row.note.push_str("; one write counts and switches (§4.1)");
    }

    match bench.options.cpu_median_ns {
        Some(ns) => rows.push(Row::absolute(
            "CPU: registration path (criterion)",
            format!("{:.4} ms", ns / 1e6),
            format!("<= {CPU_LIMIT_MS} ms"),
            "-".into(),
            ns / 1e6,
            CPU_LIMIT_MS,
            "median; parse, validate, resolve, item, response JSON".into(),
        )),
        None => rows.push(Row {
            metric: "CPU: registration path (criterion)".into(),
            value: "not measured".into(),
            target: format!("<= {CPU_LIMIT_MS} ms"),
            baseline: "-".into(),
            ratio: None,
            status: Status::Miss,
            note: "pass --cpu-median-ns".into(),
        }),
    }
    let argon2_median_ms = median(argon2_ms.clone());
    rows.push(Row::info(
        "Argon2id hash (m=19456 KiB, t=2, p=1)",
        format!("{argon2_median_ms:.2} ms"),
        format!(
            "median of {ARGON2_SAMPLES}, {}; first in the process {argon2_first_ms:.2}",
            spread(argon2_ms)
        ),
    ));
    // The cost curve on paper, from this run's hash: Lambda's CPU share is memory/1,769 MB of
    // one vCPU, and Argon2id with p = 1 uses one core at most.
    for memory_mb in [512.0, 1024.0, 1769.0] {
        let share = f64::min(memory_mb / 1769.0, 1.0);
        rows.push(Row::info(
            format!("Argon2id at {memory_mb} MB, on paper"),
            format!("{:.1} ms", argon2_median_ms / share),
            format!(
                "the median above / {share:.2} vCPU{}",
                if memory_mb == 1024.0 {
                    "; the registration function's size (template.yaml)"
                } else {
                    ""
                }
            ),
        ));
    }
    rows.push(Row::info(
        "CPU: parse + validate, first in a process",
        format!("{:.2} ms", first_cpu.phone_ms + first_cpu.first_ms),
        format!(
            "of which the first Phone::parse {:.2} ms; the second time {:.3} ms",
            first_cpu.phone_ms, first_cpu.second_ms
        ),
    ));
    rows.push(Row::info(
        "Phone: first number of another calling code",
        format!("{:.2} ms", first_cpu.second_code_ms),
        format!(
            "+1 (25 regions) after +370; the 9th code loads all: {:.2} ms",
            first_cpu.ninth_code_ms
        ),
    ));
    let mut tls_ms = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let output = tokio::process::Command::new(bench.options.bin_dir.join("tls-first-use"))
            .output()
            .await
            .context("running tls-first-use")?;
        ensure!(output.status.success(), "tls-first-use failed");
        tls_ms.push(
            String::from_utf8_lossy(&output.stdout)
                .trim()
                .parse::<f64>()?,
        );
    }
    rows.push(Row::info(
        "TLS: first key share in a process (aws-lc-rs)",
        format!("{:.3} ms", median(tls_ms.clone())),
        format!(
            "median of {rounds} fresh processes, {}; random bytes + X25519 key",
            spread(tls_ms)
        ),
    ));
    let size = |name: &str| -> anyhow::Result<u64> {
        Ok(std::fs::metadata(bench.options.bin_dir.join(name))?.len())
    };
    let hello_size = size(HELLO)?;
    for name in FUNCTIONS {
        let bytes = size(name)?;
        rows.push(Row {
            metric: format!("binary size: {name} (stripped)"),
            value: format!("{bytes} B ({:.2} MB)", bytes as f64 / 1e6),
            target: "report".into(),
            baseline: format!("{:.2} MB (hello)", hello_size as f64 / 1e6),
            ratio: None,
            status: Status::Info,
            note: String::new(),
        });
    }
    report::print(&rows);
    Ok(())
}

/// The registration's parse + validate, timed the first and the second time in this process.
struct FirstCpu {
    phone_ms: f64,
    first_ms: f64,
    second_ms: f64,
    /// The first +1 number after that (a rebuild with +1's 25 regions added).
    second_code_ms: f64,
    /// The first number of a 9th calling code (every code loaded).
    ninth_code_ms: f64,
}

fn first_cpu_path(event: &str) -> anyhow::Result<FirstCpu> {
    use shared::registration::{RegistrationRequest, ValidationContext, validate};
    let event: Value = serde_json::from_str(event)?;
    let body = event["body"]
        .as_str()
        .context("event body")?
        .as_bytes()
        .to_vec();
    let tenant = shared::domain::TenantId::parse(TENANT).map_err(anyhow::Error::msg)?;
    let phone = |number: &str| -> anyhow::Result<f64> {
        let started = Instant::now();
        shared::domain::Phone::parse(number).map_err(anyhow::Error::msg)?;
        Ok(ms(started.elapsed()))
    };
    let phone_ms = phone("+37060012345")?;
    let once = || -> anyhow::Result<f64> {
        let started = Instant::now();
        let request: RegistrationRequest =
            shared::api::body::parse_json(&body).map_err(|e| anyhow::anyhow!("parse: {e:?}"))?;
        let context = ValidationContext {
            tenant: &tenant,
            today: chrono::Utc::now().date_naive(),
            min_age_years: 18,
        };
        validate(request, &context).map_err(|e| anyhow::anyhow!("validate: {e:?}"))?;
        Ok(ms(started.elapsed()))
    };
    let first_ms = once()?;
    let second_ms = once()?;
    let second_code_ms = phone("+16502530000")?;
    for number in [
        "+442079460958",
        "+4930123456",
        "+33123456789",
        "+34912345678",
        "+390612345678",
        "+48123456789",
    ] {
        phone(number)?;
    }
    Ok(FirstCpu {
        phone_ms,
        first_ms,
        second_ms,
        second_code_ms,
        ninth_code_ms: phone("+31201234567")?,
    })
}
