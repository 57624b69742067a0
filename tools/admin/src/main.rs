//! `onboarding-admin`: operator commands against a table, local or in AWS. The SDK reads
//! region and credentials from the environment; `AWS_ENDPOINT_URL_DYNAMODB` points it at a
//! local server.
//!
//!   onboarding-admin validate <hierarchy.json>
//!   onboarding-admin put-hierarchy <table> <hierarchy.json>
//!   onboarding-admin create-table <table> [template.yaml]

use std::path::Path;

use anyhow::Context as _;
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

fn report_validity(h: &shared::categorization::Hierarchy, problem: Option<&anyhow::Error>) {
    match problem {
        None => println!(
            "ok: tenant {} ({} categories, {} features)",
            h.tenant_id,
            h.categories.len(),
            h.features.len()
        ),
        Some(problem) => eprintln!("invalid: {problem:#}"),
    }
}

async fn run(args: &[String]) -> anyhow::Result<()> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["validate", file] => {
            let hierarchies = admin::read_hierarchies(Path::new(file))?;
            admin::validate_all(&hierarchies, report_validity)
        }
        ["put-hierarchy", table, file] => {
            let hierarchies = admin::read_hierarchies(Path::new(file))?;
            admin::validate_all(&hierarchies, |h, problem| {
                if problem.is_some() {
                    report_validity(h, problem);
                }
            })
            .context("nothing was written")?;
            let store = DynamoStore::new(client_from_env().await, *table);
            admin::put_hierarchies(&store, &hierarchies, |h, outcome| match outcome {
                Ok(put) => {
                    println!(
                        "put: tenant {} (version {}, {} item writes)",
                        h.tenant_id, put.version, put.item_writes
                    );
                    if let Some(why) = &put.leftovers {
                        eprintln!(
                            "warning: tenant {}: deleting the items it replaced failed ({why}); \
                             readers skip them, and the next put-hierarchy deletes them",
                            h.tenant_id
                        );
                    }
                }
                Err(err) => eprintln!("not put: {err:#}"),
            })
            .await
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
