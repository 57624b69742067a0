//! Registration (§3): the request DTO as clients send it, its validation into a
//! `NewRegistration` (every field problem reported together), and the customer record that is
//! stored and returned.

mod customer;
mod dto;
pub(crate) mod validate;

pub use customer::{
    Address, Audit, Contact, Customer, CustomerStatus, Person, User, UserStatus, timestamp,
};
pub use dto::RegistrationRequest;
pub use validate::{NewRegistration, ValidationContext, validate, validate_typed};
