//! Everything the onboarding Lambdas share: the contract's domain types and their parsing,
//! categorization and smart selection, the storage port with its DynamoDB adapter, and the
//! HTTP plumbing (auth claims, client context, body hygiene, the response envelope).
//!
//! The functions under `functions/` and the local gateway under `tools/` are thin layers over
//! this crate: nothing here knows whether it runs in AWS Lambda or on a laptop.

pub mod activation;
pub mod api;
pub mod categorization;
pub mod clock;
pub mod config;
pub mod domain;
pub mod keyed;
pub mod lambda;
pub mod password;
pub mod registration;
pub mod store;
pub mod telemetry;
#[cfg(test)]
mod testing;

/// Base of every route of the contract.
pub const API_BASE: &str = "/api/v2.1/customer/individual";
