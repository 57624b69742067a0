//! `onboarding-admin`: operator commands against a table, local or in AWS. The SDK reads
//! region and credentials from the environment; `AWS_ENDPOINT_URL_DYNAMODB` points it at a
//! local server.
//!
//!   onboarding-admin validate <hierarchy.json>
//!   onboarding-admin put-hierarchy <table> <hierarchy.json>
//!   onboarding-admin create-table <table> [template.yaml]

use std::path::Path;
use std::process::ExitCode;

use shared::store::dynamodb::{DynamoStore, client_from_env};

const USAGE: &str = "usage:
  onboarding-admin validate <hierarchy.json>
  onboarding-admin put-hierarchy <table> <hierarchy.json>
  onboarding-admin create-table <table> [template.yaml]";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &[String]) -> anyhow::Result<()> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["validate", file] => {
            for h in admin::read_hierarchies(Path::new(file))? {
                admin::validate(&h)?;
                println!(
                    "ok: tenant {} ({} categories, {} features)",
                    h.tenant_id,
                    h.categories.len(),
                    h.features.len()
                );
            }
            Ok(())
        }
        ["put-hierarchy", table, file] => {
            let hierarchies = admin::read_hierarchies(Path::new(file))?;
            for h in &hierarchies {
                admin::validate(h)?;
            }
            let store = DynamoStore::new(client_from_env().await, *table);
            for h in &hierarchies {
                let writes = admin::put_hierarchy(&store, h).await?;
                println!("put: tenant {} ({writes} item writes)", h.tenant_id);
            }
            Ok(())
        }
        ["create-table", table, rest @ ..] if rest.len() <= 1 => {
            let template_path = rest.first().copied().unwrap_or("template.yaml");
            let template = std::fs::read_to_string(template_path)?;
            let client = client_from_env().await;
            if admin::create_table(&client, &template, table).await? {
                println!("created table {table} from {template_path}");
            } else {
                println!("table {table} already exists");
            }
            Ok(())
        }
        _ => anyhow::bail!("{USAGE}"),
    }
}
