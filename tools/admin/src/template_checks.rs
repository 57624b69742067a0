//! The template's promises, checked so they cannot rot: least privilege per function (no
//! wildcard, no managed CRUD policy, actions within each function's allowance, resources
//! scoped to the table, the SES identity or the activation code secret), the JWT authorizer and a declared scope on every
//! route but the CORS preflight, which exists only with CORS on, and a table that is on-demand, encrypted, point-in-time recoverable, TTL'd and
//! retained; the operations dashboard shows every metric the functions emit, and no other.
//! [`Policies`] evaluates the functions' DynamoDB statements the way IAM does, so
//! the end-to-end tests can check every call a function makes against its own policy.

use std::collections::{BTreeSet, HashMap};

use serde_norway::Value;

/// The one route without the JWT authorizer: browsers' CORS preflights carry no token.
pub const PREFLIGHT_ROUTE: &str = "OPTIONS /{proxy+}";

/// The function answering CORS preflights (and nothing else: it may do nothing).
const PREFLIGHT_FUNCTION: &str = "PreflightFunction";

/// What each function may do, and nothing more.
const ALLOWED: [(&str, &[&str]); 4] = [
    (PREFLIGHT_FUNCTION, &[]),
    ("CategorizationFunction", &["dynamodb:Query"]),
    (
        "RegistrationFunction",
        &[
            "dynamodb:PutItem",
            "dynamodb:Query",
            "dynamodb:GetItem",
            "dynamodb:UpdateItem",
            "ses:SendEmail",
            "secretsmanager:GetSecretValue",
        ],
    ),
    (
        "ActivationFunction",
        &[
            "dynamodb:GetItem",
            "dynamodb:UpdateItem",
            "ses:SendEmail",
            "secretsmanager:GetSecretValue",
        ],
    ),
];

fn list(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Sequence(items) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_owned))
            .collect(),
        _ => vec![],
    }
}

/// Every problem with the template's promises (empty when it keeps them all).
pub fn problems(template: &str) -> Vec<String> {
    let mut out = Vec::new();
    let doc: Value = match serde_norway::from_str(template) {
        Ok(doc) => doc,
        Err(e) => return vec![format!("template is not YAML: {e}")],
    };
    let resources = doc
        .get("Resources")
        .and_then(Value::as_mapping)
        .cloned()
        .unwrap_or_default();
    let route_scopes = doc
        .get("Metadata")
        .and_then(|m| m.get("RouteScopes"))
        .cloned()
        .unwrap_or(Value::Null);

    for (name, resource) in &resources {
        let name = name.as_str().unwrap_or_default();
        if resource.get("Type").and_then(Value::as_str) != Some("AWS::Serverless::Function") {
            continue;
        }
        let Some(allowed) = ALLOWED
            .iter()
            .find(|(f, _)| *f == name)
            .map(|(_, actions)| actions.iter().copied().collect::<BTreeSet<&str>>())
        else {
            out.push(format!(
                "{name}: a function the template test does not know"
            ));
            continue;
        };
        let props = resource.get("Properties").cloned().unwrap_or(Value::Null);
        for policy in props
            .get("Policies")
            .and_then(Value::as_sequence)
            .cloned()
            .unwrap_or_default()
        {
            let Some(statements) = policy.get("Statement").and_then(Value::as_sequence) else {
                out.push(format!("{name}: policy {policy:?} is not an inline Statement (no managed or SAM policy templates)"));
                continue;
            };
            for statement in statements {
                for action in statement.get("Action").map(list).unwrap_or_default() {
                    if action.contains('*') {
                        out.push(format!("{name}: wildcard action {action}"));
                    } else if !allowed.contains(action.as_str()) {
                        out.push(format!("{name}: action {action} is not in its allowance"));
                    }
                }
                let resource = statement.get("Resource").cloned().unwrap_or(Value::Null);
                let one = |resource: &Value| match resource {
                    Value::Tagged(tagged) => {
                        let text = format!("{:?}", tagged.value);
                        (tagged.tag == "!GetAtt" && text.contains("CustomersTable.Arn"))
                            || (tagged.tag == "!Ref" && text.contains("ActivationCodeSecret"))
                            || (tagged.tag == "!Sub"
                                && (text.contains(":identity/${SesIdentity}")
                                    || text.contains(":identity/${SesFromAddress}")))
                    }
                    _ => false,
                };
                let scoped = match &resource {
                    Value::Sequence(all) => !all.is_empty() && all.iter().all(one),
                    single => one(single),
                };
                if !scoped {
                    out.push(format!(
                        "{name}: resource {resource:?} is not the table or the SES identity"
                    ));
                }
            }
        }
        for (event_name, event) in props
            .get("Events")
            .and_then(Value::as_mapping)
            .cloned()
            .unwrap_or_default()
        {
            if event.get("Type").and_then(Value::as_str) != Some("HttpApi") {
                continue;
            }
            let p = event.get("Properties").cloned().unwrap_or(Value::Null);
            let route = format!(
                "{} {}",
                p.get("Method")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_uppercase(),
                p.get("Path").and_then(Value::as_str).unwrap_or("")
            );
            let authorizer = p
                .get("Auth")
                .and_then(|a| a.get("Authorizer"))
                .and_then(Value::as_str);
            // Only the CORS preflight route goes without a token: OPTIONS, answered with no data,
            // and only when CORS is on.
            let preflight = route == PREFLIGHT_ROUTE && name == PREFLIGHT_FUNCTION;
            if authorizer != Some("JwtAuthorizer") && !(preflight && authorizer == Some("NONE")) {
                out.push(format!(
                    "{name}.{event_name:?}: route {route} without the JWT authorizer"
                ));
            }
            if preflight && resource.get("Condition").and_then(Value::as_str) != Some("CorsEnabled")
            {
                out.push(format!(
                    "{name}: the tokenless route {route} exists without CORS (Condition: CorsEnabled)"
                ));
            }
            let is_default = p.get("Path").and_then(Value::as_str) == Some("$default");
            if !is_default
                && !preflight
                && route_scopes.get(&route).and_then(Value::as_str).is_none()
            {
                out.push(format!(
                    "{name}: route {route} declares no scope in Metadata.RouteScopes"
                ));
            }
        }
        let environment = props
            .get("Environment")
            .and_then(|e| e.get("Variables"))
            .cloned()
            .unwrap_or(Value::Null);
        if environment.get("ACTIVATION_CODE_SECRET").is_some() {
            out.push(format!(
                "{name}: ACTIVATION_CODE_SECRET in the environment; name the secret with ACTIVATION_CODE_SECRET_ARN"
            ));
        }
        let issues_codes = matches!(name, "RegistrationFunction" | "ActivationFunction");
        if issues_codes && environment.get("ACTIVATION_CODE_SECRET_ARN").is_none() {
            out.push(format!(
                "{name}: no ACTIVATION_CODE_SECRET_ARN: the function could not start"
            ));
        }
        let revision = match environment.get("ACTIVATION_KEY_REVISION") {
            Some(Value::Tagged(tagged)) => {
                tagged.tag == "!Ref" && tagged.value.as_str() == Some("ActivationKeyRevision")
            }
            _ => false,
        };
        if issues_codes && !revision {
            out.push(format!(
                "{name}: no ACTIVATION_KEY_REVISION from !Ref ActivationKeyRevision: a step of \
                 the key's rotation would not restart it, and its warm environments would keep \
                 the old keys"
            ));
        }
        if props.get("Architectures").is_some() {
            out.push(format!(
                "{name}: architecture set per function; keep arm64 in Globals"
            ));
        }
    }

    let tables: Vec<&Value> = resources
        .values()
        .filter(|r| r.get("Type").and_then(Value::as_str) == Some("AWS::DynamoDB::Table"))
        .collect();
    for table in tables {
        let p = table.get("Properties").cloned().unwrap_or(Value::Null);
        let checks = [
            (
                table.get("DeletionPolicy").and_then(Value::as_str) == Some("Retain"),
                "DeletionPolicy: Retain",
            ),
            (
                table.get("UpdateReplacePolicy").and_then(Value::as_str) == Some("Retain"),
                "UpdateReplacePolicy: Retain",
            ),
            (
                p.get("BillingMode").and_then(Value::as_str) == Some("PAY_PER_REQUEST"),
                "on-demand billing",
            ),
            (
                p.get("PointInTimeRecoverySpecification")
                    .and_then(|s| s.get("PointInTimeRecoveryEnabled"))
                    .and_then(Value::as_bool)
                    == Some(true),
                "point-in-time recovery",
            ),
            (
                p.get("DeletionProtectionEnabled").and_then(Value::as_bool) == Some(true),
                "deletion protection",
            ),
            (
                p.get("SSESpecification")
                    .and_then(|s| s.get("SSEEnabled"))
                    .and_then(Value::as_bool)
                    == Some(true),
                "encryption",
            ),
            (
                p.get("TimeToLiveSpecification")
                    .and_then(|s| s.get("AttributeName"))
                    .and_then(Value::as_str)
                    == Some("expiresAt")
                    && p.get("TimeToLiveSpecification")
                        .and_then(|s| s.get("Enabled"))
                        .and_then(Value::as_bool)
                        == Some(true),
                "TTL on expiresAt",
            ),
        ];
        for (ok, what) in checks {
            if !ok {
                out.push(format!("table: missing {what}"));
            }
        }
    }
    let globals = doc
        .get("Globals")
        .and_then(|g| g.get("Function"))
        .cloned()
        .unwrap_or(Value::Null);
    if globals.get("Architectures").map(list) != Some(vec!["arm64".to_owned()]) {
        out.push("functions must run on arm64".into());
    }
    if globals.get("Runtime").and_then(Value::as_str) != Some("provided.al2023") {
        out.push("functions must run on provided.al2023".into());
    }
    if globals.get("Tracing").and_then(Value::as_str) != Some("Active") {
        out.push("X-Ray tracing must be active".into());
    }
    out.extend(dashboard_problems(&resources));
    out
}

/// The operations dashboard shows every metric the functions emit (namespace
/// `OnboardingApi`), with the dimensions they record it under (`Function`, and `Code` for the
/// `BY_CODE` counters), and names no other there: a metric renamed or relabelled in the code
/// would otherwise leave an empty graph, and a new one none.
fn dashboard_problems(resources: &serde_norway::Mapping) -> Vec<String> {
    let body = resources
        .get("OperationsDashboard")
        .and_then(|d| d.get("Properties"))
        .and_then(|p| p.get("DashboardBody"));
    let body = match body {
        Some(Value::Tagged(tagged)) if tagged.tag == "!Sub" => tagged.value.as_str(),
        Some(Value::String(body)) => Some(body.as_str()),
        _ => None,
    };
    let Some(body) = body else {
        return vec!["OperationsDashboard: no dashboard with a DashboardBody".into()];
    };
    // `${Name}` substitutions become plain text, so the JSON can be read as CloudWatch will.
    let mut plain = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(start) = rest.find("${") {
        plain.push_str(&rest[..start]);
        match rest[start..].find('}') {
            Some(end) => {
                plain.push_str("substituted");
                rest = &rest[start + end + 1..];
            }
            None => {
                rest = &rest[start..];
                break;
            }
        }
    }
    plain.push_str(rest);
    let json: serde_json::Value = match serde_json::from_str(&plain) {
        Ok(json) => json,
        Err(e) => return vec![format!("OperationsDashboard: the body is not JSON: {e}")],
    };
    let by_code = |name: &str| shared::telemetry::emf::BY_CODE.contains(&name);
    let mut out = Vec::new();
    let mut shown = BTreeSet::new();
    let widgets = json["widgets"].as_array().cloned().unwrap_or_default();
    for widget in &widgets {
        for entry in widget["properties"]["metrics"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let Some(entry) = entry.as_array() else {
                continue;
            };
            let texts: Vec<&str> = entry.iter().filter_map(serde_json::Value::as_str).collect();
            match texts.as_slice() {
                [".", ..] => out.push(format!(
                    "OperationsDashboard: a row in shorthand ({texts:?}); name its namespace"
                )),
                ["OnboardingApi", name, dimensions @ ..] => {
                    shown.insert((*name).to_owned());
                    // The functions' documents carry `Function` (and `Code` on some counters).
                    let one_function = matches!(
                        dimensions,
                        ["Function", "categorization" | "registration" | "activation"]
                    );
                    if by_code(name) || !one_function {
                        out.push(format!(
                            "OperationsDashboard: {name} with dimensions {dimensions:?}; the \
                             functions record it with Function{}",
                            if by_code(name) {
                                " and Code (use a SEARCH)"
                            } else {
                                ""
                            }
                        ));
                    }
                }
                _ => {}
            }
            for expression in entry.iter().filter_map(|e| e["expression"].as_str()) {
                if !expression.contains("OnboardingApi") {
                    continue;
                }
                let coded = expression.contains("{OnboardingApi,Function,Code}");
                if !coded && !expression.contains("{OnboardingApi,Function}") {
                    out.push(format!(
                        "OperationsDashboard: {expression:?} searches OnboardingApi by other \
                         dimensions than the functions record (Function, or Function and Code)"
                    ));
                    continue;
                }
                for part in expression.split("MetricName=\"").skip(1) {
                    if let Some((name, _)) = part.split_once('"') {
                        shown.insert(name.to_owned());
                        if by_code(name) != coded {
                            out.push(format!(
                                "OperationsDashboard: {name} searched {} Code, recorded {}",
                                if coded { "by" } else { "without" },
                                if by_code(name) {
                                    "with it"
                                } else {
                                    "without it"
                                }
                            ));
                        }
                    }
                }
            }
        }
    }
    let emitted: BTreeSet<String> = shared::telemetry::emf::COUNTERS
        .iter()
        .chain(&shared::telemetry::emf::HISTOGRAMS)
        .map(|name| (*name).to_owned())
        .collect();
    for name in shown.difference(&emitted) {
        out.push(format!(
            "OperationsDashboard: OnboardingApi metric {name} is not one the functions emit"
        ));
    }
    for name in emitted.difference(&shown) {
        out.push(format!(
            "OperationsDashboard: the functions' metric {name} is not on it"
        ));
    }
    out
}

/// One `Allow` statement on the table: its actions, and the partition keys it is limited to
/// (`ForAllValues:StringLike` on `dynamodb:LeadingKeys`; `None` = any key).
#[derive(Debug, Clone)]
struct TableStatement {
    actions: Vec<String>,
    leading_keys: Option<Vec<String>>,
}

/// The functions' DynamoDB permissions as the template grants them.
#[derive(Debug, Clone)]
pub struct Policies {
    by_function: HashMap<String, Vec<TableStatement>>,
}

impl Policies {
    /// Reads every function's inline statements on the table. A statement with a condition
    /// other than `ForAllValues:StringLike` on `dynamodb:LeadingKeys`, or with an effect other
    /// than `Allow`, is refused rather than guessed at.
    pub fn from_template(template: &str) -> Result<Self, String> {
        let doc: Value =
            serde_norway::from_str(template).map_err(|e| format!("template is not YAML: {e}"))?;
        let mut by_function = HashMap::new();
        let resources = doc
            .get("Resources")
            .and_then(Value::as_mapping)
            .ok_or("template has no Resources")?;
        for (name, resource) in resources {
            if resource.get("Type").and_then(Value::as_str) != Some("AWS::Serverless::Function") {
                continue;
            }
            let name = name.as_str().unwrap_or_default().to_owned();
            let mut statements = Vec::new();
            let policies = resource
                .get("Properties")
                .and_then(|p| p.get("Policies"))
                .and_then(Value::as_sequence)
                .cloned()
                .unwrap_or_default();
            for policy in policies {
                for statement in policy
                    .get("Statement")
                    .and_then(Value::as_sequence)
                    .cloned()
                    .unwrap_or_default()
                {
                    if statement.get("Effect").and_then(Value::as_str) != Some("Allow") {
                        return Err(format!("{name}: only Allow statements are evaluated"));
                    }
                    let on_table = matches!(
                        statement.get("Resource"),
                        Some(Value::Tagged(t)) if t.tag == "!GetAtt"
                            && format!("{:?}", t.value).contains("CustomersTable.Arn")
                    );
                    if !on_table {
                        continue;
                    }
                    let leading_keys = match statement.get("Condition") {
                        None => None,
                        Some(condition) => {
                            let keys = condition
                                .get("ForAllValues:StringLike")
                                .and_then(|c| c.get("dynamodb:LeadingKeys"))
                                .map(list);
                            let only = condition.as_mapping().is_some_and(|m| m.len() == 1)
                                && condition
                                    .get("ForAllValues:StringLike")
                                    .and_then(Value::as_mapping)
                                    .is_some_and(|m| m.len() == 1);
                            match keys {
                                Some(keys) if only => Some(keys),
                                _ => {
                                    return Err(format!(
                                        "{name}: condition {condition:?} is not evaluated"
                                    ));
                                }
                            }
                        }
                    };
                    statements.push(TableStatement {
                        actions: statement.get("Action").map(list).unwrap_or_default(),
                        leading_keys,
                    });
                }
            }
            by_function.insert(name, statements);
        }
        Ok(Self { by_function })
    }

    /// Whether `function` may make `action` (e.g. `dynamodb:PutItem`) on an item whose
    /// partition key is `leading_key`.
    pub fn allows(&self, function: &str, action: &str, leading_key: &str) -> bool {
        self.by_function.get(function).is_some_and(|statements| {
            statements.iter().any(|s| {
                s.actions.iter().any(|a| a == action)
                    && s.leading_keys
                        .as_ref()
                        .is_none_or(|patterns| patterns.iter().any(|p| string_like(p, leading_key)))
            })
        })
    }
}

/// IAM's `StringLike`: `*` matches any run of characters, `?` any one character.
fn string_like(pattern: &str, value: &str) -> bool {
    let (p, v): (Vec<char>, Vec<char>) = (pattern.chars().collect(), value.chars().collect());
    // matched[j]: pattern[..i] matches value[..j], row by row.
    let mut matched = vec![false; v.len() + 1];
    matched[0] = true;
    for &c in &p {
        let mut next = vec![false; v.len() + 1];
        if c == '*' {
            let mut any = false;
            for j in 0..=v.len() {
                any |= matched[j];
                next[j] = any;
            }
        } else {
            for j in 1..=v.len() {
                next[j] = matched[j - 1] && (c == '?' || c == v[j - 1]);
            }
        }
        matched = next;
    }
    matched[v.len()]
}

/// What IAM authorises for one DynamoDB request (`X-Amz-Target` and its JSON body): each
/// action with the partition key it touches. A transaction is authorised per item, as the
/// item's own action (`Put` → `PutItem`, `Update` → `UpdateItem`, …).
pub fn dynamodb_actions(
    target: &str,
    body: &serde_json::Value,
) -> Result<Vec<(String, String)>, String> {
    let operation = target.rsplit('.').next().unwrap_or(target);
    let pk = |key: &serde_json::Value| key["PK"]["S"].as_str().map(str::to_owned);
    let one = |action: &str, key: Option<String>| {
        key.map(|k| vec![(format!("dynamodb:{action}"), k)])
            .ok_or_else(|| format!("{operation} without a PK: {body}"))
    };
    match operation {
        "GetItem" | "UpdateItem" | "DeleteItem" => one(operation, pk(&body["Key"])),
        "PutItem" => one(operation, pk(&body["Item"])),
        "Query" => {
            // The partition key's clause of the key condition: `PK = :placeholder`.
            let condition = body["KeyConditionExpression"].as_str().unwrap_or_default();
            let placeholder = condition
                .split(" AND ")
                .filter_map(|clause| clause.split_once('='))
                .find(|(name, _)| name.trim() == "PK")
                .map(|(_, value)| value.trim());
            let key = placeholder.and_then(|p| {
                body["ExpressionAttributeValues"][p]["S"]
                    .as_str()
                    .map(str::to_owned)
            });
            one(operation, key)
        }
        "TransactWriteItems" => {
            let mut out = Vec::new();
            for item in body["TransactItems"].as_array().into_iter().flatten() {
                let (action, key) = if let Some(put) = item.get("Put") {
                    ("PutItem", pk(&put["Item"]))
                } else if let Some(update) = item.get("Update") {
                    ("UpdateItem", pk(&update["Key"]))
                } else if let Some(delete) = item.get("Delete") {
                    ("DeleteItem", pk(&delete["Key"]))
                } else if let Some(check) = item.get("ConditionCheck") {
                    ("ConditionCheckItem", pk(&check["Key"]))
                } else {
                    return Err(format!("unknown transaction item {item}"));
                };
                out.extend(one(action, key)?);
            }
            Ok(out)
        }
        other => Err(format!("{other} is not evaluated")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = include_str!("../../../template.yaml");

    #[test]
    fn the_template_keeps_its_promises() {
        assert_eq!(problems(TEMPLATE), Vec::<String>::new());
    }

    #[test]
    fn route_scopes_in_the_template_are_the_ones_the_functions_enforce() {
        use shared::api::auth::scopes;
        use shared::api::routes::{Function, ROUTES};
        let doc: Value = serde_norway::from_str(TEMPLATE).unwrap();
        for route in ROUTES {
            let expected = match route.function {
                Function::Categorization => scopes::CATEGORIZATION_READ,
                Function::Registration => scopes::CUSTOMERS_WRITE,
                Function::Activation => scopes::CUSTOMERS_ACTIVATE,
            };
            let key = format!("{} {}", route.method, route.path);
            assert_eq!(
                doc["Metadata"]["RouteScopes"][key.as_str()].as_str(),
                Some(expected),
                "{key}"
            );
        }
    }

    #[test]
    fn string_like_matches_as_iam_does() {
        let cases = [
            ("TENANT#*#CUSTOMER#*", "TENANT#t1#CUSTOMER#c-1", true),
            ("TENANT#*#CUSTOMER#*", "TENANT#t1#CUSTOMER#", true),
            ("TENANT#*#CUSTOMER#*", "TENANT#t1#EMAIL#a@b.c", false),
            ("TENANT#*#CATEGORIZATION", "TENANT#t1#CATEGORIZATION", true),
            (
                "TENANT#*#CATEGORIZATION",
                "TENANT#t1#CATEGORIZATIONX",
                false,
            ),
            ("TENANT#?#X", "TENANT#a#X", true),
            ("TENANT#?#X", "TENANT#ab#X", false),
            ("*", "", true),
            ("", "", true),
            ("", "a", false),
        ];
        for (pattern, value, expected) in cases {
            assert_eq!(string_like(pattern, value), expected, "{pattern} ~ {value}");
        }
    }

    #[test]
    fn requests_are_authorised_per_item_and_action() {
        use serde_json::json;
        let key = |pk: &str| json!({"PK": {"S": pk}, "SK": {"S": "X"}});
        let cases = [
            (
                "DynamoDB_20120810.GetItem",
                json!({"Key": key("A")}),
                vec![("GetItem", "A")],
            ),
            (
                "DynamoDB_20120810.PutItem",
                json!({"Item": key("B")}),
                vec![("PutItem", "B")],
            ),
            (
                "DynamoDB_20120810.Query",
                json!({"KeyConditionExpression": "PK = :pk",
                       "ExpressionAttributeValues": {":pk": {"S": "C"}}}),
                vec![("Query", "C")],
            ),
            (
                "DynamoDB_20120810.TransactWriteItems",
                json!({"TransactItems": [
                    {"Put": {"Item": key("D")}},
                    {"Update": {"Key": key("E")}},
                    {"Delete": {"Key": key("F")}},
                    {"ConditionCheck": {"Key": key("G")}}]}),
                vec![
                    ("PutItem", "D"),
                    ("UpdateItem", "E"),
                    ("DeleteItem", "F"),
                    ("ConditionCheckItem", "G"),
                ],
            ),
        ];
        for (target, body, expected) in cases {
            let expected: Vec<(String, String)> = expected
                .into_iter()
                .map(|(a, k)| (format!("dynamodb:{a}"), k.to_owned()))
                .collect();
            assert_eq!(dynamodb_actions(target, &body), Ok(expected), "{target}");
        }
        assert!(dynamodb_actions("DynamoDB_20120810.Scan", &json!({})).is_err());
        assert!(dynamodb_actions("DynamoDB_20120810.GetItem", &json!({})).is_err());
    }

    #[test]
    fn each_function_may_touch_its_own_items_and_nothing_else() {
        let policies = Policies::from_template(TEMPLATE).unwrap();
        let (customer, email) = ("TENANT#t#CUSTOMER#c", "TENANT#t#EMAIL#a@b.c");
        let (hierarchy, idempotency) = ("TENANT#t#CATEGORIZATION", "TENANT#t#IDEMPOTENCY#k");
        let cases = [
            ("CategorizationFunction", "Query", hierarchy, true),
            ("CategorizationFunction", "Query", customer, false),
            ("CategorizationFunction", "GetItem", hierarchy, false),
            ("RegistrationFunction", "Query", hierarchy, true),
            ("RegistrationFunction", "PutItem", customer, true),
            ("RegistrationFunction", "PutItem", email, true),
            ("RegistrationFunction", "PutItem", idempotency, true),
            ("RegistrationFunction", "GetItem", idempotency, true),
            ("RegistrationFunction", "UpdateItem", idempotency, true),
            // A claim is released by a tombstone (PutItem), not deleted.
            ("RegistrationFunction", "DeleteItem", idempotency, false),
            ("RegistrationFunction", "UpdateItem", customer, false),
            ("RegistrationFunction", "DeleteItem", customer, false),
            // The marker is read after a transaction whose answer was lost; the customer never.
            ("RegistrationFunction", "GetItem", email, true),
            ("RegistrationFunction", "GetItem", customer, false),
            ("RegistrationFunction", "UpdateItem", email, false),
            ("RegistrationFunction", "PutItem", hierarchy, false),
            ("ActivationFunction", "GetItem", customer, true),
            ("ActivationFunction", "UpdateItem", customer, true),
            ("ActivationFunction", "UpdateItem", email, false),
            ("ActivationFunction", "GetItem", idempotency, false),
            ("ActivationFunction", "PutItem", customer, false),
            ("NoSuchFunction", "GetItem", customer, false),
        ];
        for (function, action, key, expected) in cases {
            assert_eq!(
                policies.allows(function, &format!("dynamodb:{action}"), key),
                expected,
                "{function} {action} {key}"
            );
        }
    }

    /// Without the revision, a rotation step's deploy would leave either function's warm
    /// environments on the old keys.
    #[test]
    fn both_functions_that_read_the_key_take_the_revision() {
        let line = "          ACTIVATION_KEY_REVISION: !Ref ActivationKeyRevision\n";
        assert_eq!(TEMPLATE.matches(line).count(), 2);
        let found = problems(&TEMPLATE.replace(line, ""));
        for function in ["RegistrationFunction", "ActivationFunction"] {
            let prefix = format!("{function}: no ACTIVATION_KEY_REVISION");
            assert!(found.iter().any(|p| p.starts_with(&prefix)), "{found:?}");
        }
    }

    /// Mutations of the real template that the check must catch.
    #[test]
    fn wildcards_dropped_authorizers_and_unretained_tables_are_caught() {
        let mutations = [
            (
                "Action: dynamodb:Query\n",
                "Action: dynamodb:*\n",
                "wildcard action",
            ),
            (
                "Action: [dynamodb:GetItem, dynamodb:UpdateItem]",
                "Action: [dynamodb:GetItem, dynamodb:UpdateItem, dynamodb:DeleteItem]",
                "not in its allowance",
            ),
            (
                "Resource: !GetAtt CustomersTable.Arn\n",
                "Resource: \"*\"\n",
                "is not the table",
            ),
            (
                "            Auth:\n              Authorizer: JwtAuthorizer\n",
                "",
                "without the JWT authorizer",
            ),
            (
                "            Path: /api/v2.1/customer/individual/registration\n            Auth:\n              Authorizer: JwtAuthorizer\n",
                "            Path: /api/v2.1/customer/individual/registration\n            Auth:\n              Authorizer: NONE\n",
                "without the JWT authorizer",
            ),
            (
                "    Type: AWS::Serverless::Function\n    Condition: CorsEnabled\n",
                "    Type: AWS::Serverless::Function\n",
                "exists without CORS",
            ),
            (
                "        LogGroup: !Ref PreflightLogs\n",
                "        LogGroup: !Ref PreflightLogs\n      Policies:\n        - Statement:\n            - Effect: Allow\n              Action: dynamodb:Query\n              Resource: !GetAtt CustomersTable.Arn\n",
                "PreflightFunction: action dynamodb:Query is not in its allowance",
            ),
            (
                "    Type: AWS::DynamoDB::Table\n    DeletionPolicy: Retain\n",
                "    Type: AWS::DynamoDB::Table\n",
                "DeletionPolicy",
            ),
            (
                "          ACTIVATION_CODE_SECRET_ARN: !Ref ActivationCodeSecret\n",
                "",
                "no ACTIVATION_CODE_SECRET_ARN",
            ),
            (
                "          ACTIVATION_CODE_SECRET_ARN: !Ref ActivationCodeSecret\n",
                "          ACTIVATION_CODE_SECRET: !Sub \"{{resolve:secretsmanager:${ActivationCodeSecret}:SecretString}}\"\n",
                "ACTIVATION_CODE_SECRET in the environment",
            ),
            (
                "          ACTIVATION_KEY_REVISION: !Ref ActivationKeyRevision\n",
                "",
                "RegistrationFunction: no ACTIVATION_KEY_REVISION",
            ),
            (
                "          ACTIVATION_KEY_REVISION: !Ref ActivationKeyRevision\n",
                "          ACTIVATION_KEY_REVISION: \"1\"\n",
                "no ACTIVATION_KEY_REVISION from !Ref",
            ),
            (
                "      DeletionProtectionEnabled: true\n",
                "",
                "deletion protection",
            ),
            (
                "        PointInTimeRecoveryEnabled: true",
                "        PointInTimeRecoveryEnabled: false",
                "point-in-time",
            ),
            (
                "      Policies:\n",
                "      Policies:\n        - DynamoDBCrudPolicy:\n            TableName: !Ref CustomersTable\n",
                "not an inline Statement",
            ),
            (
                "                [\"OnboardingApi\", \"ActivationsSucceeded\", \"Function\", \"activation\"],\n",
                "",
                "metric ActivationsSucceeded is not on it",
            ),
            (
                "MetricName=\\\"ResendsRefused\\\"",
                "MetricName=\\\"ResendRefused\\\"",
                "metric ResendRefused is not one the functions emit",
            ),
            ("\"widgets\": [", "\"widgets\": [,", "the body is not JSON"),
            (
                "{OnboardingApi,Function,Code} MetricName=\\\"ActivationsFailed\\\"",
                "{OnboardingApi,Function} MetricName=\\\"ActivationsFailed\\\"",
                "ActivationsFailed searched without Code, recorded with it",
            ),
            (
                "[\"OnboardingApi\", \"Argon2Time\", \"Function\", \"registration\", {\"stat\": \"p50\"",
                "[\"OnboardingApi\", \"Argon2Time\", \"Function\", \"argon2\", {\"stat\": \"p50\"",
                "Argon2Time with dimensions",
            ),
        ];
        for (from, to, expected) in mutations {
            assert!(TEMPLATE.contains(from), "mutation anchor {from:?} is gone");
            let mutated = TEMPLATE.replacen(from, to, 1);
            let found = problems(&mutated);
            assert!(
                found.iter().any(|p| p.contains(expected)),
                "{expected}: {found:?}"
            );
        }
    }
}
