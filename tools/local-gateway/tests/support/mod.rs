//! Test support: a gateway per test on a free port, against a table of its own in moto.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use activation::Activation;
use categorization::Categorization;
use registration::Registration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use local_gateway::{Functions, Gateway, LocalAuthorizer, router};
use serde_json::{Value, json};
use shared::activation::delivery::MailboxSender;
use shared::activation::settings::ActivationSettings;
use shared::clock::Clock;
use shared::clock::FixedClock;
use shared::config::Config;
use shared::store::dynamodb::DynamoStore;

pub const REGISTRATION: &str = "/api/v2.1/customer/individual/registration";

pub fn hierarchy_path(tenant: &str) -> String {
    format!("/api/v2.1/customer/individual/categorization/hierarchy/{tenant}")
}

/// Every log line the functions wrote during this test run (the production JSON format, at
/// debug level), for the privacy checks.
pub static LOGS: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

struct Capture;

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn captured_logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned()
}

/// The captured log lines logged within one request's span (by its request id).
pub fn logged_lines_of(request_id: &str) -> Vec<Value> {
    captured_logs()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["span"]["request_id"] == request_id)
        .collect()
}

/// A new table from `template.yaml`. One per stack, not one per run: moto's
/// `TransactWriteItems` deep-copies its table for rollback (twice per registration), so a
/// table shared by the whole run made each registration slower than the one before, ~0.35 ms
/// per item (~550 ms by the end of a run); queued behind a burst of them in moto (which
/// applies one request at a time), a request found less than its write reserve left and
/// answered 503.
async fn new_table(client: &Client) -> String {
    let name = format!("e2e-{}", uuid::Uuid::new_v4().simple());
    let template = include_str!("../../../../template.yaml");
    admin::create_table(client, template, &name)
        .await
        .expect("create table in moto");
    name
}

fn new_mailbox() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("e2e-mailbox-{}.jsonl", uuid::Uuid::new_v4()))
}

pub struct Stack {
    pub base: String,
    pub mailbox: std::path::PathBuf,
    pub clock: Arc<FixedClock>,
    pub table: String,
    pub client: Client,
    pub store: DynamoStore,
    pub authorizer: LocalAuthorizer,
    pub http: reqwest::Client,
    /// Every DynamoDB request the functions made: (template resource, target, JSON body).
    calls: Arc<Mutex<Vec<Call>>>,
}

type Call = (&'static str, String, Value);

/// Records each DynamoDB request a function's client sends (every attempt).
#[derive(Debug)]
struct Recorder {
    function: &'static str,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl aws_sdk_dynamodb::config::Intercept for Recorder {
    fn name(&self) -> &'static str {
        "Recorder"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_sdk_dynamodb::config::RuntimeComponents,
        _cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let request = context.request();
        let target = request
            .headers()
            .get("x-amz-target")
            .unwrap_or_default()
            .to_owned();
        let body = request
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(Value::Null);
        self.calls
            .lock()
            .unwrap()
            .push((self.function, target, body));
        Ok(())
    }
}

/// The template's function policies, read once.
pub fn policies() -> &'static admin::template_checks::Policies {
    static POLICIES: std::sync::OnceLock<admin::template_checks::Policies> =
        std::sync::OnceLock::new();
    POLICIES.get_or_init(|| {
        admin::template_checks::Policies::from_template(include_str!("../../../../template.yaml"))
            .expect("the template's policies")
    })
}

impl Stack {
    /// The (function, IAM action, partition key) of every DynamoDB request made so far.
    pub fn dynamodb_actions(&self) -> Vec<(&'static str, String, String)> {
        let calls = self.calls.lock().unwrap();
        let mut out = Vec::new();
        for (function, target, body) in calls.iter() {
            let actions = admin::template_checks::dynamodb_actions(target, body)
                .unwrap_or_else(|e| panic!("{function}: {e}"));
            out.extend(actions.into_iter().map(|(a, k)| (*function, a, k)));
        }
        out
    }

    /// The requests the template's policy would refuse: in AWS each would fail with
    /// AccessDeniedException, which moto never raises.
    pub fn refused_by_policy(&self) -> Vec<String> {
        self.dynamodb_actions()
            .into_iter()
            .filter(|(function, action, key)| !policies().allows(function, action, key))
            .map(|(function, action, key)| format!("{function}: {action} on {key}"))
            .collect()
    }
}

/// Every test's stack checks, at its end, that each DynamoDB request its functions made is
/// one their own policy in `template.yaml` allows.
impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Kept for a look at what was sent.
            return;
        }
        let _ = std::fs::remove_file(&self.mailbox);
        let _ = std::fs::remove_dir(&self.mailbox);
        let refused = self.refused_by_policy();
        assert!(
            refused.is_empty(),
            "DynamoDB requests template.yaml does not allow: {refused:#?}"
        );
    }
}

pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

/// The body, then every line the functions logged for this request (its `x-request-id`):
/// what a failed assertion on a reply needs to say why (a 503's cause is only in the log).
impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.body)?;
        let id = self
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok());
        for line in id.map(logged_lines_of).unwrap_or_default() {
            write!(f, "\n  logged: {line}")?;
        }
        Ok(())
    }
}

impl Reply {
    pub async fn read(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or_else(|_| json!({ "raw": text }));
        Self {
            status,
            headers,
            body,
        }
    }
}

/// The tests' client, with the functions' configuration but patient: moto's transactions
/// deep-copy every table and can stall past the 3 s attempt timeout on a busy machine, and an
/// SDK retry of a committed write is then refused by moto, which ignores `ClientRequestToken`
/// (DynamoDB would answer the retry with the first outcome). The functions under test share
/// it, behind a fault proxy too: the proxy's faults (dropped connections, errors, throttling,
/// short delays) need no timeout to show, while a stall past the attempt timeout would turn
/// its delay into an answer lost after the write, which only DynamoDB's tokens make safe.
async fn patient_client() -> Client {
    let sdk = shared::store::dynamodb::aws_config_from_env().await;
    let timeouts = aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .operation_attempt_timeout(std::time::Duration::from_secs(60))
        .operation_timeout(std::time::Duration::from_secs(120))
        .build();
    shared::store::dynamodb::client(&sdk.to_builder().timeout_config(timeouts).build())
}

impl Stack {
    pub async fn start() -> Self {
        Self::start_with_dynamodb(None).await
    }

    /// A stack whose functions reach DynamoDB through `endpoint` (a fault proxy), while the
    /// test itself reads and seeds the table directly.
    pub async fn start_with_dynamodb(endpoint: Option<String>) -> Self {
        Self::start_with(endpoint, local_gateway::LAMBDA_TIMEOUT).await
    }

    /// As [`Stack::start_with_dynamodb`], with each invocation's deadline `timeout` after it
    /// starts.
    pub async fn start_with(endpoint: Option<String>, timeout: std::time::Duration) -> Self {
        Self::start_full(None, endpoint, timeout, new_mailbox(), None).await
    }

    /// A stack whose functions read `keys` as the activation key's secret (one key or a key
    /// set), on `other`'s table if given.
    pub async fn start_with_keys(other: Option<&Stack>, keys: &str) -> Self {
        let keys = shared::keyed::KeySet::parse(keys).expect("a valid key set");
        let table = other.map(|stack| stack.table.clone());
        let timeout = local_gateway::LAMBDA_TIMEOUT;
        Self::start_full(table, None, timeout, new_mailbox(), Some(keys)).await
    }

    /// As [`Stack::start_with`], on `other`'s table: fresh functions (nothing cached) over
    /// the same data.
    pub async fn start_beside(
        other: &Stack,
        endpoint: Option<String>,
        timeout: std::time::Duration,
    ) -> Self {
        Self::start_full(
            Some(other.table.clone()),
            endpoint,
            timeout,
            new_mailbox(),
            None,
        )
        .await
    }

    /// A stack whose every e-mail fails: its mailbox is a directory, which cannot be
    /// appended to.
    pub async fn start_with_failing_delivery() -> Self {
        let mailbox =
            std::env::temp_dir().join(format!("e2e-unwritable-mailbox-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir(&mailbox).unwrap();
        Self::start_full(None, None, local_gateway::LAMBDA_TIMEOUT, mailbox, None).await
    }

    /// A stack on `table` (a new one if `None`), with the activation key's secret `keys` (the
    /// tests' one key if `None`).
    async fn start_full(
        table: Option<String>,
        endpoint: Option<String>,
        timeout: std::time::Duration,
        mailbox: std::path::PathBuf,
        keys: Option<shared::keyed::KeySet>,
    ) -> Self {
        assert!(
            std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_ok(),
            "end-to-end tests need a DynamoDB-compatible server: run them with `make test`"
        );
        shared::telemetry::init_with_writer(|| Capture, "debug");
        let client = patient_client().await;
        let table = match table {
            Some(table) => table,
            None => new_table(&client).await,
        };
        let config = Config::from_lookup(|name| match name {
            "TABLE_NAME" => Some(table.clone()),
            _ => None,
        })
        .unwrap();
        let store = DynamoStore::new(client.clone(), &table);
        let authorizer =
            LocalAuthorizer::new("e2e-issuer", "e2e-audience", "e2e-secret", "tenant_id");
        let functions_client = match endpoint {
            None => client.clone(),
            Some(url) => Client::from_conf(client.config().to_builder().endpoint_url(url).build()),
        };
        // Each function gets its own client, which records the calls it makes for the policy
        // check when the stack is dropped.
        let calls = Arc::new(Mutex::new(Vec::new()));
        let store_of = |function: &'static str| {
            let config = functions_client
                .config()
                .to_builder()
                .interceptor(Recorder {
                    function,
                    calls: calls.clone(),
                })
                .build();
            Arc::new(DynamoStore::new(Client::from_conf(config), &table))
        };
        let mut settings = ActivationSettings::for_mailbox(
            mailbox.clone(),
            std::time::Duration::from_secs(24 * 3600),
        );
        if let Some(keys) = keys {
            settings.keys = keys;
        }
        // On a whole second, so that limits and expiries fall on the seconds the tests name
        // (a test that needs a fraction sets the clock itself).
        let clock = Arc::new(FixedClock::at(chrono::SubsecRound::trunc_subsecs(
            chrono::Utc::now(),
            0,
        )));
        let sender = Arc::new(MailboxSender::new(mailbox.clone()));
        let registration = store_of("RegistrationFunction");
        let gateway = Arc::new(Gateway {
            functions: Functions {
                categorization: Arc::new(Categorization::new(
                    config.clone(),
                    store_of("CategorizationFunction"),
                )),
                registration: Arc::new(Registration::new(
                    config.clone(),
                    &settings,
                    registration.clone(),
                    registration.clone(),
                    registration,
                    sender.clone(),
                    clock.clone(),
                )),
                activation: Arc::new(Activation::new(
                    config,
                    &settings,
                    store_of("ActivationFunction"),
                    sender,
                    clock.clone(),
                )),
            },
            authorizer: authorizer.clone(),
            timeout,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router(gateway)).await });
        Self {
            base,
            mailbox,
            clock,
            table,
            client,
            store,
            authorizer,
            http: reqwest::Client::new(),
            calls,
        }
    }

    /// A fresh tenant holding the first demo tenant's hierarchy.
    pub async fn tenant_with_demo_hierarchy(&self) -> String {
        let tenant = format!("t-{}", uuid::Uuid::new_v4().simple());
        self.put_hierarchy(&demo_hierarchy(&tenant)).await;
        tenant
    }

    pub async fn put_hierarchy(&self, hierarchy: &shared::categorization::Hierarchy) {
        admin::put_hierarchy(&self.store, hierarchy)
            .await
            .expect("put hierarchy");
    }

    pub fn token(&self, tenant: &str, scopes: Option<&[&str]>) -> String {
        let all = [
            "onboarding/categorization.read",
            "onboarding/customers.write",
            "onboarding/customers.activate",
        ];
        self.authorizer.mint(tenant, scopes.unwrap_or(&all), 300)
    }

    pub async fn register(&self, tenant: &str, body: &Value) -> Reply {
        let token = self.token(tenant, None);
        self.post_raw(REGISTRATION, &token, tenant, &body.to_string())
            .await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        token: &str,
        tenant_header: &str,
        body: &str,
    ) -> Reply {
        self.post_typed(
            path,
            token,
            tenant_header,
            "application/json",
            body.to_owned(),
        )
        .await
    }

    pub async fn post_typed(
        &self,
        path: &str,
        token: &str,
        tenant_header: &str,
        content_type: &str,
        body: String,
    ) -> Reply {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("content-type", content_type)
            .header("x-tenant-id", tenant_header)
            .header("x-forwarded-from", "web-app")
            .header("platform", "web")
            .header("deviceId", "device-e2e")
            .header("user-agent", "e2e-tests/1.0")
            .body(body)
            .send()
            .await
            .expect("gateway answers");
        Reply::read(response).await
    }

    /// A POST with all scopes and exactly the client-context `headers` given.
    pub async fn post_with_context(
        &self,
        path: &str,
        tenant: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(self.token(tenant, None))
            .header("content-type", "application/json")
            .header("x-tenant-id", tenant);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request
            .body(body.to_string())
            .send()
            .await
            .expect("gateway answers");
        Reply::read(response).await
    }

    pub async fn get(&self, path: &str, tenant: &str, scopes: Option<&[&str]>) -> Reply {
        let token = self.token(tenant, scopes);
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("x-tenant-id", tenant)
            .send()
            .await
            .expect("gateway answers");
        Reply::read(response).await
    }

    pub fn clock_now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// Sets the functions' clock.
    pub fn set_clock(&self, at: chrono::DateTime<chrono::Utc>) {
        self.clock.set(at);
    }

    /// Moves the functions' clock forward.
    pub fn advance(&self, seconds: i64) {
        let now = self.clock.now();
        self.clock.set(now + chrono::Duration::seconds(seconds));
    }

    /// Every message in this stack's mailbox, oldest first.
    pub fn mail(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.mailbox)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("mailbox lines are JSON"))
            .collect()
    }

    /// The last code sent to `customer_id`.
    pub fn code_for(&self, customer_id: &str) -> String {
        self.mail()
            .iter()
            .rev()
            .find(|m| m["customerId"] == customer_id)
            .and_then(|m| m["code"].as_str().map(str::to_owned))
            .expect("a code was sent")
    }

    /// Registers the contract example with `email` and returns the customer id.
    pub async fn registered(&self, tenant: &str, email: &str) -> String {
        let reply = self.register(tenant, &contract_body(tenant, email)).await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        reply.body["data"]["id"].as_str().unwrap().to_owned()
    }

    pub async fn activate(
        &self,
        tenant: &str,
        customer_id: &str,
        user_id: &str,
        code: &str,
    ) -> Reply {
        let token = self.token(tenant, None);
        let body = json!({ "userId": user_id, "code": code }).to_string();
        self.post_raw(
            &format!("/api/v2.1/customer/individual/{customer_id}/activation"),
            &token,
            tenant,
            &body,
        )
        .await
    }

    pub async fn resend(&self, tenant: &str, customer_id: &str, user_id: &str) -> Reply {
        let token = self.token(tenant, None);
        let body = json!({ "userId": user_id }).to_string();
        self.post_raw(
            &format!("/api/v2.1/customer/individual/{customer_id}/activation/code"),
            &token,
            tenant,
            &body,
        )
        .await
    }

    /// The customer item, as plain JSON.
    pub async fn customer_item(&self, tenant: &str, customer_id: &str) -> Option<Value> {
        self.items_of(tenant)
            .await
            .into_iter()
            .find(|i| i["PK"] == format!("TENANT#{tenant}#CUSTOMER#{customer_id}"))
    }

    /// One item as stored (a consistent read; `None` when there is none).
    pub async fn raw_item(&self, pk: String, sk: &str) -> Option<HashMap<String, AttributeValue>> {
        self.client
            .get_item()
            .table_name(&self.table)
            .key("PK", AttributeValue::S(pk))
            .key("SK", AttributeValue::S(sk.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
    }

    /// One item of `tenant`'s hierarchy partition, as stored (the test fails without it).
    pub async fn hierarchy_item(&self, tenant: &str, sk: &str) -> HashMap<String, AttributeValue> {
        self.raw_item(format!("TENANT#{tenant}#CATEGORIZATION"), sk)
            .await
            .unwrap_or_else(|| panic!("no hierarchy item {sk}"))
    }

    /// The sort keys of `tenant`'s hierarchy partition (a consistent read).
    pub async fn hierarchy_keys(&self, tenant: &str) -> Vec<String> {
        self.client
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk")
            .expression_attribute_values(
                ":pk",
                AttributeValue::S(format!("TENANT#{tenant}#CATEGORIZATION")),
            )
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|item| item["SK"].as_s().unwrap().clone())
            .collect()
    }

    /// The customer item as stored (the test fails without it).
    pub async fn customer_raw(
        &self,
        tenant: &str,
        customer_id: &str,
    ) -> HashMap<String, AttributeValue> {
        self.raw_item(
            format!("TENANT#{tenant}#CUSTOMER#{customer_id}"),
            "CUSTOMER",
        )
        .await
        .unwrap_or_else(|| panic!("no customer {customer_id}"))
    }

    /// Writes `item` as it is, past the functions and the admin tool.
    pub async fn put_raw(&self, item: HashMap<String, AttributeValue>) {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .unwrap();
    }

    /// Every item of the table that belongs to `tenant`, as plain JSON.
    pub async fn items_of(&self, tenant: &str) -> Vec<Value> {
        let prefix = format!("TENANT#{tenant}#");
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(PK, :p) AND NOT contains(PK, :c)")
                .expression_attribute_values(":p", AttributeValue::S(prefix.clone()))
                .expression_attribute_values(":c", AttributeValue::S("#CATEGORIZATION".into()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("scan");
            for item in page.items.unwrap_or_default() {
                let value: HashMap<String, Value> =
                    serde_dynamo::from_item(item).expect("item as JSON");
                items.push(serde_json::to_value(value).unwrap());
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return items,
            }
        }
    }
}

/// Sets `field` of the JSON a hierarchy item holds (its `json` attribute).
pub fn set_json_field(item: &mut HashMap<String, AttributeValue>, field: &str, value: &str) {
    let mut json: Value = serde_json::from_str(
        item["json"]
            .as_s()
            .expect("a hierarchy item holds its JSON"),
    )
    .unwrap();
    json[field] = Value::String(value.to_owned());
    item.insert("json".into(), AttributeValue::S(json.to_string()));
}

/// An item's size as DynamoDB bills it (developer guide, "Item sizes and formats"): names and
/// values in UTF-8 bytes, numbers 1 byte per two significant digits plus 1, 3 bytes per list
/// or map and 1 per element in it.
pub fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    fn number(n: &str) -> usize {
        let digits: String = n
            .split(['e', 'E'])
            .next()
            .unwrap_or_default()
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
        significant.div_ceil(2) + 1
    }
    fn value(v: &AttributeValue) -> usize {
        match v {
            AttributeValue::S(s) => s.len(),
            AttributeValue::N(n) => number(n),
            AttributeValue::B(b) => b.as_ref().len(),
            AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
            AttributeValue::Ss(set) => set.iter().map(String::len).sum(),
            AttributeValue::Ns(set) => set.iter().map(|n| number(n)).sum(),
            AttributeValue::Bs(set) => set.iter().map(|b| b.as_ref().len()).sum(),
            AttributeValue::L(list) => 3 + list.iter().map(|v| value(v) + 1).sum::<usize>(),
            AttributeValue::M(map) => {
                3 + map
                    .iter()
                    .map(|(k, v)| k.len() + value(v) + 1)
                    .sum::<usize>()
            }
            other => panic!("no size rule for {other:?}"),
        }
    }
    item.iter().map(|(name, v)| name.len() + value(v)).sum()
}

#[test]
fn item_sizes_follow_dynamodbs_rules() {
    let item = |pairs: Vec<(&str, AttributeValue)>| -> HashMap<String, AttributeValue> {
        pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    };
    use AttributeValue::{Bool, L, M, N, S, Ss};
    let cases: Vec<(HashMap<String, AttributeValue>, usize)> = vec![
        (item(vec![("PK", S("abc".into()))]), 5),
        (item(vec![("é", S("é".into()))]), 4),
        // 12345 → 5 significant digits → 3 bytes, + 1.
        (item(vec![("n", N("123.45".into()))]), 1 + 3 + 1),
        (item(vec![("n", N("-0.00100".into()))]), 1 + 1 + 1),
        (item(vec![("n", N("1764115200".into()))]), 1 + 4 + 1),
        (
            item(vec![("m", M(HashMap::from([("a".into(), Bool(true))])))]),
            1 + 3 + 1 + 1 + 1,
        ),
        (item(vec![("l", L(vec![S("xy".into())]))]), 1 + 3 + 2 + 1),
        (item(vec![("s", Ss(vec!["ab".into(), "c".into()]))]), 1 + 3),
    ];
    for (item, size) in cases {
        assert_eq!(item_size(&item), size, "{item:?}");
    }
}

/// `n` (at most 4) codes that are not `right`.
pub fn wrong_codes(right: &str, n: usize) -> Vec<String> {
    assert!(n <= 4, "from five candidates, one may be the right code");
    (1..=5u32)
        .map(|i| format!("{i:08}"))
        .filter(|g| g != right)
        .take(n)
        .collect()
}

/// The first demo tenant's hierarchy, as `tenant`'s.
pub fn demo_hierarchy(tenant: &str) -> shared::categorization::Hierarchy {
    let mut hierarchy = admin::parse_hierarchies(include_str!(
        "../../../../../shared/spec/demo-hierarchy.json"
    ))
    .unwrap()
    .remove(0);
    hierarchy.tenant_id = shared::domain::TenantId::parse(tenant).unwrap();
    hierarchy
}

/// The contract's §3.1 example body for `tenant`, with `email`.
pub fn contract_body(tenant: &str, email: &str) -> Value {
    json!({
        "firstName": "Marcus", "lastName": "Jensen",
        "email": email, "phone": "+37060012345",
        "password": "SecurePass123!", "matchingPassword": "SecurePass123!",
        "roleIds": ["ACCOUNT_OWNER", "USER"],
        "dateOfBirth": "1990-05-15", "gender": "MALE",
        "nationality": "LT", "placeOfBirth": "Vilnius", "pincode": "12345",
        "customerCategory": { "id": "MEDIUM_RISK_INDIVIDUAL", "name": "Medium Risk Individual" },
        "individualCustomer": {
            "customerName": "Marcus Jensen",
            "tenantId": tenant,
            "person": {
                "firstName": "Marcus", "lastName": "Jensen", "email": email,
                "phone": "+37060012345", "dateOfBirth": "1990-05-15", "gender": "MALE",
                "nationality": "Lithuania", "placeOfBirth": "Vilnius", "pincode": "12345",
                "addresses": [ { "type": "HOME", "street": "Gedimino pr. 1", "city": "Vilnius",
                                 "postalCode": "01103", "country": "LT", "isPrimary": true } ],
                "contacts": [ { "type": "PHONE", "value": "+37060012345", "isPrimary": true } ] },
            "user": { "username": email, "roles": ["ACCOUNT_OWNER", "USER"] },
            "categorization": {
                "id": "MEDIUM_RISK_INDIVIDUAL",
                "categoryFeatureRelations": [ {
                    "feature": { "id": "7c1d9e22-3b4a-4f5e-8a6b-9c0d1e2f3a4b", "code": "MEDIUM_RISK_PROFILE" },
                    "enabled": true,
                    "parametrization": [ { "name": "riskLevel", "value": "MEDIUM" },
                                         { "name": "riskScore", "value": "55" } ] } ] } }
    })
}

impl Stack {
    /// Registers with an `Idempotency-Key`.
    pub async fn register_with_key(&self, tenant: &str, key: &str, body: &Value) -> Reply {
        let token = self.token(tenant, None);
        let response = self
            .http
            .post(format!("{}{REGISTRATION}", self.base))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .header("x-tenant-id", tenant)
            .header("x-forwarded-from", "web-app")
            .header("platform", "web")
            .header("deviceId", "device-e2e")
            .header("user-agent", "e2e-tests/1.0")
            .header("idempotency-key", key)
            .body(body.to_string())
            .send()
            .await
            .expect("gateway answers");
        Reply::read(response).await
    }
}
