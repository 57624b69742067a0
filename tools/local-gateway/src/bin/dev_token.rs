//! `dev-token <tenant> [scope ...]`: prints a bearer token the local gateway accepts (all three
//! scopes when none are named), valid for one hour. Uses the same `LOCAL_JWT_*` variables.

use shared::api::auth::scopes;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(tenant) = args.first() else {
        eprintln!("usage: dev-token <tenant> [scope ...]");
        return std::process::ExitCode::FAILURE;
    };
    if shared::domain::TenantId::parse(tenant).is_err() {
        eprintln!("error: tenant ids are 1-64 characters of A-Z, a-z, 0-9, '_' and '-'");
        return std::process::ExitCode::FAILURE;
    }
    let requested: Vec<&str> = args[1..]
        .iter()
        .flat_map(|s| s.split_whitespace())
        .collect();
    let scopes: Vec<&str> = if requested.is_empty() {
        vec![
            scopes::CATEGORIZATION_READ,
            scopes::CUSTOMERS_WRITE,
            scopes::CUSTOMERS_ACTIVATE,
        ]
    } else {
        requested
    };
    println!(
        "{}",
        local_gateway::LocalAuthorizer::from_env().mint(tenant, &scopes, 3600)
    );
    std::process::ExitCode::SUCCESS
}
