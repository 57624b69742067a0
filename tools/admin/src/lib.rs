//! Operator commands (§7): create the table exactly as `template.yaml` declares it (local
//! stacks and tests), and validate and put a tenant's categorization hierarchy into a table,
//! local or in AWS. The hierarchy is checked before anything is written, and written in one
//! transaction.

pub mod template_checks;

use std::path::Path;

use anyhow::{Context, bail};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TableStatus,
    TimeToLiveSpecification, TimeToLiveStatus,
};
use serde_norway::Value;
use shared::categorization::Hierarchy;
use shared::store::StoreError;
use shared::store::dynamodb::{DynamoStore, HierarchyPut};

/// The DynamoDB table resource of a SAM/CloudFormation template.
pub fn table_properties(template: &str) -> anyhow::Result<Value> {
    let doc: Value = serde_norway::from_str(template).context("template.yaml is not YAML")?;
    let resources = doc
        .get("Resources")
        .and_then(Value::as_mapping)
        .context("template has no Resources")?;
    let tables: Vec<&Value> = resources
        .values()
        .filter(|r| r.get("Type").and_then(Value::as_str) == Some("AWS::DynamoDB::Table"))
        .collect();
    match tables.as_slice() {
        [table] => table
            .get("Properties")
            .cloned()
            .context("table has no Properties"),
        _ => bail!(
            "template must declare exactly one AWS::DynamoDB::Table, found {}",
            tables.len()
        ),
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> anyhow::Result<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .with_context(|| format!("table property {key} missing or not a string"))
}

/// Creates `table_name` with the key schema, attributes, billing mode and TTL of the
/// template's table, and waits until it is active. An existing table keeps its keys and
/// billing, but gets the template's TTL if it has none (a first run that failed between the
/// two calls would otherwise leave idempotency records that never expire), and is refused if
/// its TTL is on another attribute. `Ok(false)`: the table existed.
pub async fn create_table(
    client: &Client,
    template: &str,
    table_name: &str,
) -> anyhow::Result<bool> {
    let props = table_properties(template)?;
    let mut request = client.create_table().table_name(table_name);
    for attr in props
        .get("AttributeDefinitions")
        .and_then(Value::as_sequence)
        .context("AttributeDefinitions missing")?
    {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(str_of(attr, "AttributeName")?)
                .attribute_type(ScalarAttributeType::from(str_of(attr, "AttributeType")?))
                .build()?,
        );
    }
    for key in props
        .get("KeySchema")
        .and_then(Value::as_sequence)
        .context("KeySchema missing")?
    {
        request = request.key_schema(
            KeySchemaElement::builder()
                .attribute_name(str_of(key, "AttributeName")?)
                .key_type(KeyType::from(str_of(key, "KeyType")?))
                .build()?,
        );
    }
    let billing = props
        .get("BillingMode")
        .and_then(Value::as_str)
        .unwrap_or("PROVISIONED");
    if billing != "PAY_PER_REQUEST" {
        bail!("the template's table must be on-demand (PAY_PER_REQUEST), is {billing}");
    }
    request = request.billing_mode(BillingMode::PayPerRequest);
    let created = match request.send().await {
        Ok(_) => true,
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) =>
        {
            false
        }
        Err(err) => return Err(sdk_error(err)).context("create table"),
    };
    if created {
        wait_until_active(client, table_name).await?;
    }
    if let Some(ttl) = props.get("TimeToLiveSpecification")
        && ttl.get("Enabled").and_then(Value::as_bool) == Some(true)
    {
        let attribute = str_of(ttl, "AttributeName")?;
        let current = client
            .describe_time_to_live()
            .table_name(table_name)
            .send()
            .await
            .map_err(sdk_error)
            .context("read the table's TTL")?;
        let description = current.time_to_live_description();
        let status = description.and_then(|d| d.time_to_live_status());
        let on = matches!(
            status,
            Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
        );
        match description.and_then(|d| d.attribute_name()) {
            Some(name) if on && name == attribute => {}
            Some(name) if on => {
                bail!("table {table_name} has TTL on {name}, the template on {attribute}")
            }
            _ => {
                wait_until_active(client, table_name).await?;
                client
                    .update_time_to_live()
                    .table_name(table_name)
                    .time_to_live_specification(
                        TimeToLiveSpecification::builder()
                            .attribute_name(attribute)
                            .enabled(true)
                            .build()?,
                    )
                    .send()
                    .await
                    .map_err(sdk_error)
                    .context("enable TTL")?;
            }
        }
    }
    Ok(created)
}

fn sdk_error<E: std::error::Error + 'static, R: std::fmt::Debug>(
    err: aws_sdk_dynamodb::error::SdkError<E, R>,
) -> anyhow::Error {
    anyhow::anyhow!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(err))
}

/// DynamoDB answers `CreateTable` while the table is still being created (moto at once), and
/// refuses most calls on it until it is active: waits up to two minutes.
async fn wait_until_active(client: &Client, table_name: &str) -> anyhow::Result<()> {
    for _ in 0..120 {
        let described = client
            .describe_table()
            .table_name(table_name)
            .send()
            .await
            .map_err(sdk_error)
            .context("read the table's status")?;
        if described.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    bail!("table {table_name} is not active after two minutes")
}

/// Reads hierarchies from a file holding one hierarchy (§2's `data`) or `{"tenants": [...]}`.
pub fn read_hierarchies(path: &Path) -> anyhow::Result<Vec<Hierarchy>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    parse_hierarchies(&text).with_context(|| format!("parse {}", path.display()))
}

/// A hierarchy file: one tenant's hierarchy (§2's `data`) or `{"tenants": [...]}`. Strict,
/// since whatever it gets wrong is written for every registration to use: a field the model
/// does not know (a misspelt `availableFeatures` would silently mean none), a key repeated in
/// an object (JSON keeps the last), or a tenant listed twice is refused, naming where.
pub fn parse_hierarchies(text: &str) -> anyhow::Result<Vec<Hierarchy>> {
    #[derive(serde::Deserialize)]
    struct List {
        tenants: Vec<Hierarchy>,
    }
    if let Some(path) = shared::api::body::repeated_key(text.as_bytes())? {
        bail!("{path} is given more than once");
    }
    let is_list = serde_json::from_str::<serde_json::Value>(text)?
        .get("tenants")
        .is_some();
    let mut unknown = Vec::new();
    let mut note = |path: serde_ignored::Path| unknown.push(path.to_string());
    let mut json = serde_json::Deserializer::from_str(text);
    let ignored = serde_ignored::Deserializer::new(&mut json, &mut note);
    let list = if is_list {
        serde_path_to_error::deserialize::<_, List>(ignored)?.tenants
    } else {
        vec![serde_path_to_error::deserialize::<_, Hierarchy>(ignored)?]
    };
    if !unknown.is_empty() {
        bail!("unknown fields: {}", unknown.join(", "));
    }
    if list.is_empty() {
        bail!("no tenant in the file (\"tenants\" is empty)");
    }
    let mut seen = std::collections::BTreeSet::new();
    for h in &list {
        if !seen.insert(h.tenant_id.as_str()) {
            bail!("tenant {} is listed twice", h.tenant_id);
        }
    }
    Ok(list)
}

/// Refuses a hierarchy with any problem, naming them all.
pub fn validate(hierarchy: &Hierarchy) -> anyhow::Result<()> {
    let problems = hierarchy.problems();
    if problems.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
    bail!(
        "hierarchy of tenant {} is invalid:\n  - {}",
        hierarchy.tenant_id,
        list.join("\n  - ")
    )
}

/// Validates every hierarchy, reporting each (`report`: the tenant and its problems, if
/// any); fails naming the invalid tenants, so that one run shows every problem of a file.
pub fn validate_all(
    hierarchies: &[Hierarchy],
    mut report: impl FnMut(&Hierarchy, Option<&anyhow::Error>),
) -> anyhow::Result<()> {
    let mut invalid = Vec::new();
    for h in hierarchies {
        let outcome = validate(h);
        report(h, outcome.as_ref().err());
        if outcome.is_err() {
            invalid.push(h.tenant_id.as_str());
        }
    }
    if !invalid.is_empty() {
        bail!(
            "{} of {} tenants invalid ({})",
            invalid.len(),
            hierarchies.len(),
            invalid.join(", ")
        );
    }
    Ok(())
}

/// Validates and writes one hierarchy.
pub async fn put_hierarchy(
    store: &DynamoStore,
    hierarchy: &Hierarchy,
) -> anyhow::Result<HierarchyPut> {
    validate(hierarchy)?;
    store
        .put_hierarchy(hierarchy)
        .await
        .map_err(|e| match e {
            StoreError::ConditionFailed => anyhow::anyhow!(
                "another replacement of this hierarchy finished first or is under way (or its \
                 header item was edited by hand); run put-hierarchy again"
            ),
            e @ StoreError::Unavailable(_) => anyhow::anyhow!(
                "{}; the replacement may or may not have been applied: run put-hierarchy \
                 again",
                e.detail()
            ),
            e => anyhow::anyhow!("{}", e.detail()),
        })
        .with_context(|| format!("put hierarchy of tenant {}", hierarchy.tenant_id))
}

/// Writes every hierarchy, each whole or not at all, going on past a tenant that fails
/// (`report`: each tenant's outcome); fails naming the tenants not written. Running it again
/// with the same file is safe.
pub async fn put_hierarchies(
    store: &DynamoStore,
    hierarchies: &[Hierarchy],
    mut report: impl FnMut(&Hierarchy, &anyhow::Result<HierarchyPut>),
) -> anyhow::Result<()> {
    let mut failed = Vec::new();
    for h in hierarchies {
        let outcome = put_hierarchy(store, h).await;
        report(h, &outcome);
        if outcome.is_err() {
            failed.push(h.tenant_id.as_str());
        }
    }
    if failed.is_empty() {
        return Ok(());
    }
    let others = if failed.len() == hierarchies.len() {
        ""
    } else {
        "; the others were"
    };
    bail!(
        "{} of {} tenants not put ({}){others}. Running put-hierarchy again with the same \
         file is safe: it replaces each tenant's hierarchy whole",
        failed.len(),
        hierarchies.len(),
        failed.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> Vec<Hierarchy> {
        parse_hierarchies(include_str!("../../../../shared/spec/demo-hierarchy.json")).unwrap()
    }

    /// One run names every invalid tenant, with its problems.
    #[test]
    fn every_invalid_tenant_is_named_in_one_run() {
        let mut hierarchies = demo();
        assert_eq!(hierarchies.len(), 2);
        validate_all(&hierarchies, |_, problem| assert!(problem.is_none())).unwrap();
        for h in &mut hierarchies {
            h.default_category_id = Some("NOPE".into());
        }
        let mut reported = Vec::new();
        let error = validate_all(&hierarchies, |h, problem| {
            reported.push((h.tenant_id.to_string(), problem.map(|p| format!("{p:#}"))));
        })
        .unwrap_err();
        assert_eq!(reported.len(), 2);
        for (tenant, problem) in &reported {
            let problem = problem.as_deref().unwrap_or_default();
            assert!(problem.contains(tenant.as_str()), "{problem}");
            assert!(problem.contains("defaultCategoryId NOPE"), "{problem}");
        }
        let names = format!("({}, {})", reported[0].0, reported[1].0);
        assert!(
            error
                .to_string()
                .starts_with(&format!("2 of 2 tenants invalid {names}")),
            "{error}"
        );
    }

    #[test]
    fn a_file_without_a_tenant_is_refused() {
        let error = parse_hierarchies(r#"{"tenants": []}"#).unwrap_err();
        assert!(error.to_string().contains("no tenant"), "{error}");
    }

    #[test]
    fn the_template_declares_one_on_demand_table_keyed_by_pk_and_sk() {
        let template = include_str!("../../../template.yaml");
        let props = table_properties(template).unwrap();
        assert_eq!(props["BillingMode"].as_str(), Some("PAY_PER_REQUEST"));
        let keys: Vec<&str> = props["KeySchema"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|k| k["AttributeName"].as_str().unwrap())
            .collect();
        assert_eq!(keys, ["PK", "SK"]);
        assert_eq!(
            props["TimeToLiveSpecification"]["AttributeName"].as_str(),
            Some("expiresAt")
        );
    }

    #[test]
    fn hierarchy_files_hold_one_tenant_or_a_list() {
        let demo = include_str!("../../../../shared/spec/demo-hierarchy.json");
        let all = parse_hierarchies(demo).unwrap();
        assert_eq!(all.len(), 2);
        let one = serde_json::to_string(&all[1]).unwrap();
        assert_eq!(
            parse_hierarchies(&one).unwrap()[0].tenant_id,
            all[1].tenant_id
        );
        for h in &all {
            validate(h).unwrap();
        }
    }

    #[test]
    fn an_invalid_hierarchy_is_refused_with_every_problem_named() {
        let mut h = parse_hierarchies(include_str!("../../../../shared/spec/demo-hierarchy.json"))
            .unwrap()
            .remove(0);
        h.default_category_id = Some("MISSING".into());
        h.features.clear();
        let message = validate(&h).unwrap_err().to_string();
        assert!(message.contains("defaultCategoryId MISSING"), "{message}");
        assert!(
            message.contains("unknown feature TRANSACTION_LIMITS"),
            "{message}"
        );
    }

    #[test]
    fn a_hierarchy_file_with_unknown_repeated_or_misspelt_entries_is_refused() {
        let demo = include_str!("../../../../shared/spec/demo-hierarchy.json");
        let one: serde_json::Value =
            serde_json::from_str::<serde_json::Value>(demo).unwrap()["tenants"][0].clone();
        let text = serde_json::to_string(&one).unwrap();
        assert!(parse_hierarchies(&text).is_ok());
        let misspelt = text.replacen("\"availableFeatures\"", "\"availableFeature\"", 1);
        let tenant_twice = format!("{{\"tenants\":[{text},{text}]}}");
        let category = serde_json::to_string(&one["categories"]["LOW_RISK_INDIVIDUAL"]).unwrap();
        let category_twice = text.replacen(
            "\"categories\":{",
            &format!("\"categories\":{{\"LOW_RISK_INDIVIDUAL\":{category},"),
            1,
        );
        let key_twice = text.replacen(
            "\"allowedValues\":{",
            "\"allowedValues\":{\"riskLevel\":[\"LOW\"],",
            1,
        );
        assert_ne!(key_twice, text);
        let top_level = format!("{{\"tenants\":[{text}],\"tenant\":{{}}}}");
        let cases = [
            (
                misspelt,
                "unknown fields: categories.LOW_RISK_INDIVIDUAL.availableFeature",
            ),
            (tenant_twice, "is listed twice"),
            (
                category_twice,
                "categories.LOW_RISK_INDIVIDUAL is given more than once",
            ),
            (
                key_twice,
                ".allowedValues.riskLevel is given more than once",
            ),
            (top_level, "unknown fields: tenant"),
        ];
        for (file, expected) in cases {
            let err = format!("{:#}", parse_hierarchies(&file).unwrap_err());
            assert!(err.contains(expected), "{expected}: {err}");
        }
    }
}
