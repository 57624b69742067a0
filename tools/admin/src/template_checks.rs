//! The template's promises, checked so they cannot rot: least privilege per function (no
//! wildcard, no managed CRUD policy, actions within each function's allowance, resources
//! scoped to the table or the SES identity), the JWT authorizer and a declared scope on every
//! route, and a table that is on-demand, encrypted, point-in-time recoverable, TTL'd and
//! retained.

use std::collections::BTreeSet;

use serde_norway::Value;

/// What each function may do, and nothing more.
const ALLOWED: [(&str, &[&str]); 3] = [
    ("CategorizationFunction", &["dynamodb:Query"]),
    (
        "RegistrationFunction",
        &["dynamodb:PutItem", "dynamodb:Query", "ses:SendEmail"],
    ),
    (
        "ActivationFunction",
        &["dynamodb:GetItem", "dynamodb:UpdateItem", "ses:SendEmail"],
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
        let allowed: BTreeSet<&str> = ALLOWED
            .iter()
            .find(|(f, _)| *f == name)
            .map(|(_, actions)| actions.iter().copied().collect())
            .unwrap_or_default();
        if allowed.is_empty() {
            out.push(format!(
                "{name}: a function the template test does not know"
            ));
        }
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
                let scoped = match &resource {
                    Value::Tagged(tagged) => {
                        let text = format!("{:?}", tagged.value);
                        (tagged.tag == "!GetAtt" && text.contains("CustomersTable.Arn"))
                            || (tagged.tag == "!Sub" && text.contains(":identity/${SesIdentity}"))
                    }
                    _ => false,
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
            if authorizer != Some("JwtAuthorizer") {
                out.push(format!(
                    "{name}.{event_name:?}: route {route} without the JWT authorizer"
                ));
            }
            let is_default = p.get("Path").and_then(Value::as_str) == Some("$default");
            if !is_default && route_scopes.get(&route).and_then(Value::as_str).is_none() {
                out.push(format!(
                    "{name}: route {route} declares no scope in Metadata.RouteScopes"
                ));
            }
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
    out
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
            ("    DeletionPolicy: Retain\n", "", "DeletionPolicy"),
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
