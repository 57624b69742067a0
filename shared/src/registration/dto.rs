//! The registration body as clients of the public API send it (§3.1). Plain serde structs:
//! everything optional, unknown fields ignored, server-owned fields (`id`, `status`, …) not
//! even read. `validate` turns this into domain types.

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationRequest {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub password: Option<String>,
    pub matching_password: Option<String>,
    pub role_ids: Option<Vec<String>>,
    pub date_of_birth: Option<String>,
    pub gender: Option<String>,
    pub nationality: Option<String>,
    pub place_of_birth: Option<String>,
    pub pincode: Option<String>,
    pub customer_category: Option<CategoryRefDto>,
    pub individual_customer: Option<IndividualCustomerDto>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CategoryRefDto {
    pub id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndividualCustomerDto {
    pub tenant_id: Option<String>,
    pub person: Option<PersonDto>,
    pub user: Option<UserDto>,
    pub categorization: Option<CategorizationDto>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersonDto {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub date_of_birth: Option<String>,
    pub gender: Option<String>,
    pub nationality: Option<String>,
    pub place_of_birth: Option<String>,
    pub pincode: Option<String>,
    pub addresses: Option<Vec<AddressDto>>,
    pub contacts: Option<Vec<ContactDto>>,
}

impl PersonDto {
    /// No person field at all (`"person": {}`): the same as no person object. Every field is
    /// named, so a new one can't be forgotten here.
    pub fn is_empty(&self) -> bool {
        matches!(
            self,
            Self {
                first_name: None,
                last_name: None,
                email: None,
                phone: None,
                date_of_birth: None,
                gender: None,
                nationality: None,
                place_of_birth: None,
                pincode: None,
                addresses: None,
                contacts: None,
            }
        )
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddressDto {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub street: Option<String>,
    pub street2: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub postal_code: Option<String>,
    pub country: Option<String>,
    pub is_primary: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactDto {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub value: Option<String>,
    pub is_primary: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserDto {
    pub username: Option<String>,
    pub roles: Option<Vec<String>>,
    pub password: Option<String>,
    pub matching_password: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CategorizationDto {
    pub id: Option<String>,
    pub category_feature_relations: Option<Vec<FeatureRelationDto>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeatureRelationDto {
    pub feature: Option<FeatureRefDto>,
    pub enabled: Option<bool>,
    pub parametrization: Option<Vec<ParameterDto>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeatureRefDto {
    pub id: Option<String>,
    pub code: Option<String>,
}

/// `value` is a string in the contract; numbers and booleans are accepted and stringified.
#[derive(Debug, Default, Deserialize)]
pub struct ParameterDto {
    pub name: Option<String>,
    pub value: Option<Value>,
}
