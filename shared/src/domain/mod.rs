//! Value types of the contract, each built only through `parse` (CONVENTIONS §1: parse, don't
//! validate). Past these constructors nothing re-checks a string.

mod country;
mod date_of_birth;
mod email;
mod name;
mod password;
mod phone;
mod tenant;
mod text;
pub mod unicode;

pub use country::Country;
pub use date_of_birth::{DateOfBirth, DobError};
pub use email::Email;
pub use name::PersonName;
pub use password::{Password, PasswordProblem};
pub use phone::Phone;
pub use tenant::TenantId;
pub use text::{TextError, clean_text};

use serde::{Deserialize, Serialize};

/// `person.gender` (§3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Gender {
    Male,
    Female,
    Other,
}

impl Gender {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_uppercase().as_str() {
            "MALE" => Some(Self::Male),
            "FEMALE" => Some(Self::Female),
            "OTHER" => Some(Self::Other),
            _ => None,
        }
    }
}

/// The roles a self-registered customer may hold (§3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    AccountOwner,
    User,
}

impl Role {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim() {
            "ACCOUNT_OWNER" => Some(Self::AccountOwner),
            "USER" => Some(Self::User),
            _ => None,
        }
    }
}
