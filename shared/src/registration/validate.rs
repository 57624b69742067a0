//! From the registration DTO to a `NewRegistration` (§3.2): the nested
//! `individualCustomer.person.*` hierarchy is the source of truth, top-level copies must agree,
//! and every field problem is collected so one 400 lists them all.

use chrono::NaiveDate;
use serde_json::Value;

use super::customer::{Address, Contact};
use super::dto::{AddressDto, ContactDto, RegistrationRequest};
use crate::api::{ApiError, FieldError};
use crate::categorization::{CategorizationRequest, FeatureRelationRequest};
use crate::domain::{
    Country, DateOfBirth, DobError, Email, Gender, Password, PersonName, Phone, Role, TenantId,
    clean_text,
};

/// Limits on repeated parts of the body (the 64 KiB body limit bounds the rest).
const MAX_ADDRESSES: usize = 5;
const MAX_CONTACTS: usize = 10;
const MAX_ROLES: usize = 10;
const MAX_RELATIONS: usize = 50;
const MAX_PARAMETERS: usize = 100;
/// Free-text fields, ids, parameter keys and values (the hierarchy check keeps what a tenant
/// stores within it: `Hierarchy::problems`).
pub(crate) const MAX_TEXT: usize = 100;
const MAX_PINCODE: usize = 20;

/// What validation needs besides the body.
#[derive(Debug, Clone)]
pub struct ValidationContext<'a> {
    pub tenant: &'a TenantId,
    pub today: NaiveDate,
    pub min_age_years: u32,
}

/// A registration whose every field is valid.
#[derive(Debug, Clone)]
pub struct NewRegistration {
    pub first_name: PersonName,
    pub last_name: PersonName,
    pub email: Email,
    pub phone: Phone,
    pub password: Password,
    pub roles: Vec<Role>,
    pub date_of_birth: Option<DateOfBirth>,
    pub gender: Option<Gender>,
    pub nationality: Option<Country>,
    pub place_of_birth: Option<String>,
    pub pincode: Option<String>,
    pub addresses: Vec<Address>,
    pub contacts: Vec<Contact>,
    pub categorization: CategorizationRequest,
}

type Problem = (&'static str, String);

/// Collects field errors while parsing.
#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, field: impl Into<String>, (code, message): Problem) {
        self.0.push(FieldError::new(field, code, message));
    }

    /// Parses an optional value, recording its problem.
    fn opt<T>(
        &mut self,
        path: &str,
        raw: Option<&String>,
        parse: impl Fn(&str) -> Result<T, Problem>,
    ) -> Option<T> {
        match parse(raw?) {
            Ok(v) => Some(v),
            Err(problem) => {
                self.push(path, problem);
                None
            }
        }
    }

    /// Parses the nested value (required or not) and checks the top-level copy agrees.
    #[allow(clippy::too_many_arguments)]
    fn pair<T>(
        &mut self,
        nested: (&str, Option<&String>),
        top: (&str, Option<&String>),
        required: Option<&'static str>,
        parse: impl Fn(&str) -> Result<T, Problem>,
        same: impl Fn(&T, &T) -> bool,
    ) -> Option<T> {
        let value = match (nested.1, required) {
            (None, Some(code)) => {
                self.push(nested.0, (code, "is required".into()));
                None
            }
            (raw, _) => self.opt(nested.0, raw, &parse),
        };
        let copy = self.opt(top.0, top.1, &parse);
        match (value, copy) {
            (Some(v), Some(c)) => {
                if !same(&v, &c) {
                    self.push(top.0, conflict(nested.0));
                }
                Some(v)
            }
            // An optional field sent only at the top level is taken from there.
            (None, Some(c)) if required.is_none() && nested.1.is_none() => Some(c),
            (value, _) => value,
        }
    }
}

fn conflict(with: &str) -> Problem {
    ("FIELD_CONFLICT", format!("disagrees with {with}"))
}

fn text(max: usize) -> impl Fn(&str) -> Result<String, Problem> {
    move |raw| clean_text(raw, max).map_err(|e| ("INVALID_FIELD", e.to_string()))
}

fn name(raw: &str) -> Result<PersonName, Problem> {
    PersonName::parse(raw).map_err(|m| ("INVALID_NAME", m.into()))
}

fn email(raw: &str) -> Result<Email, Problem> {
    Email::parse(raw).map_err(|m| ("INVALID_EMAIL", m.into()))
}

fn phone(raw: &str) -> Result<Phone, Problem> {
    Phone::parse(raw).map_err(|m| ("INVALID_PHONE", m.into()))
}

fn country(raw: &str) -> Result<Country, Problem> {
    Country::parse(raw).map_err(|m| ("INVALID_COUNTRY", m.into()))
}

fn gender(raw: &str) -> Result<Gender, Problem> {
    Gender::parse(raw).ok_or(("INVALID_GENDER", "must be MALE, FEMALE or OTHER".into()))
}

fn pincode(raw: &str) -> Result<String, Problem> {
    let value = text(MAX_PINCODE)(raw)?;
    if value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-')
    {
        Ok(value)
    } else {
        Err((
            "INVALID_FIELD",
            "may contain only A-Z, a-z, 0-9, spaces and '-'".into(),
        ))
    }
}

/// A parameter value: a JSON string, or a number or boolean written as one.
fn parameter_value(raw: &Value) -> Result<String, Problem> {
    let as_text = match raw {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return Err(("INVALID_FIELD", "must be a string".into())),
    };
    text(MAX_TEXT)(&as_text)
}

/// [`validate`] for a body read by `parse_json_collecting`: `type_errors` are values of the
/// wrong JSON type, taken as absent in `body`, answered together with the rules' findings on
/// the rest (§3.2: all field problems at once), without what follows only from their absence.
pub fn validate_typed(
    body: RegistrationRequest,
    type_errors: Vec<FieldError>,
    ctx: &ValidationContext<'_>,
) -> Result<NewRegistration, ApiError> {
    match validate(body, ctx) {
        Ok(registration) if type_errors.is_empty() => Ok(registration),
        Ok(_) => Err(ApiError::Validation(type_errors)),
        Err(ApiError::Validation(found)) => {
            let mut errors = type_errors;
            let rest: Vec<FieldError> = found
                .into_iter()
                .filter(|e| !errors.iter().any(|t| follows_from(e, &t.field)))
                .collect();
            errors.extend(rest);
            Err(ApiError::Validation(errors))
        }
        // No person object because what was sent as it (or every field in it) had the wrong
        // type: say that, precisely.
        Err(ApiError::FlatObjectNotSupported)
            if type_errors.iter().any(|e| {
                e.field == "individualCustomer" || e.field.starts_with("individualCustomer.person")
            }) =>
        {
            Err(ApiError::Validation(type_errors))
        }
        // Otherwise the body's shape (FLAT_OBJECT_NOT_SUPPORTED) or its tenant comes first.
        Err(other) => Err(other),
    }
}

/// Whether the rules' finding `e` only restates that a value of the wrong type at `typed` was
/// taken as absent: a finding on that value or inside it, or "is required" for a value that
/// may come from either place (`password` and `individualCustomer.user.password`, the same
/// for `matchingPassword`; the phone and the contacts it may come from). A name or e-mail is
/// required in the person whatever its top-level copy holds, so that finding stays.
fn follows_from(e: &FieldError, typed: &str) -> bool {
    let inside = e.field == typed
        || e.field
            .strip_prefix(typed)
            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['));
    let value = |field: &str| {
        let leaf = field.rsplit('.').next().unwrap_or(field);
        match leaf.split('[').next().unwrap_or(leaf) {
            "password" => Some("password"),
            "matchingPassword" => Some("matchingPassword"),
            "phone" | "contacts" => Some("phone"),
            _ => None,
        }
    };
    inside
        || (e.message.starts_with("is required")
            && value(&e.field).is_some_and(|v| value(typed) == Some(v)))
}

/// Validates the whole body. A tenant mismatch in the body is a 403 on its own; a body with
/// person fields only at the top level is `FLAT_OBJECT_NOT_SUPPORTED`; everything else is
/// collected into one `VALIDATION_FAILED`.
pub fn validate(
    mut req: RegistrationRequest,
    ctx: &ValidationContext<'_>,
) -> Result<NewRegistration, ApiError> {
    let ic = req.individual_customer.take().unwrap_or_default();
    if let Some(body_tenant) = &ic.tenant_id {
        // A malformed id is 400 wherever it is sent (§1.1); a well-formed other tenant's, 403.
        let body_tenant =
            TenantId::parse(body_tenant.trim()).map_err(|_| ApiError::InvalidTenantId)?;
        if body_tenant != *ctx.tenant {
            return Err(ApiError::TenantMismatch);
        }
    }
    let Some(person) = ic.person.filter(|p| !p.is_empty()) else {
        // §3.2: `individualCustomer.person` is required, and its absence (person fields at the
        // top level or nowhere; `"person": {}` holds none) is answered with
        // FLAT_OBJECT_NOT_SUPPORTED naming the hierarchy.
        return Err(ApiError::FlatObjectNotSupported);
    };
    let user = ic.user.unwrap_or_default();
    let mut errors = Errors::default();
    const P: &str = "individualCustomer.person";

    let first_name = errors.pair(
        (&format!("{P}.firstName"), person.first_name.as_ref()),
        ("firstName", req.first_name.as_ref()),
        Some("INVALID_NAME"),
        name,
        |a, b| a == b,
    );
    let last_name = errors.pair(
        (&format!("{P}.lastName"), person.last_name.as_ref()),
        ("lastName", req.last_name.as_ref()),
        Some("INVALID_NAME"),
        name,
        |a, b| a == b,
    );
    let email = errors.pair(
        (&format!("{P}.email"), person.email.as_ref()),
        ("email", req.email.as_ref()),
        Some("INVALID_EMAIL"),
        email,
        |a, b| a.normalized() == b.normalized(),
    );
    if let (Some(username), Some(email)) = (&user.username, &email) {
        let path = "individualCustomer.user.username";
        // The username names the same mailbox, in any of its spellings.
        if let Some(username) = errors.opt(path, Some(username), text(Email::MAX_CHARS))
            && Email::parse(&username).map_or_else(|_| username.to_lowercase(), |u| u.normalized())
                != email.normalized()
        {
            errors.push(path, conflict(&format!("{P}.email")));
        }
    }

    // Phone: person.phone, else top-level phone, else the primary (or first) PHONE contact.
    let contacts = contacts(&mut errors, person.contacts.as_deref());
    let phones = || contacts.iter().filter(|c| c.kind == "PHONE");
    let phone_contact = phones().find(|c| c.is_primary).or_else(|| phones().next());
    let phone = match (&person.phone, &req.phone) {
        (None, None) => match phone_contact {
            Some(contact) => Phone::parse(&contact.value).ok(),
            None => {
                errors.push(
                    format!("{P}.phone"),
                    (
                        "INVALID_PHONE",
                        "is required (person.phone or a PHONE contact)".into(),
                    ),
                );
                None
            }
        },
        (None, Some(_)) => errors.opt("phone", req.phone.as_ref(), phone),
        (Some(_), _) => errors.pair(
            (&format!("{P}.phone"), person.phone.as_ref()),
            ("phone", req.phone.as_ref()),
            None,
            phone,
            |a, b| a == b,
        ),
    };

    let today = ctx.today;
    let min_age = ctx.min_age_years;
    let date_of_birth = errors.pair(
        (&format!("{P}.dateOfBirth"), person.date_of_birth.as_ref()),
        ("dateOfBirth", req.date_of_birth.as_ref()),
        None,
        |raw| {
            DateOfBirth::parse(raw, today, min_age).map_err(|e| match e {
                DobError::Invalid(m) => ("INVALID_DATE_OF_BIRTH", m.to_owned()),
                DobError::Underage(age) => (
                    "UNDERAGE",
                    format!("the customer must be at least {age} years old"),
                ),
            })
        },
        |a, b| a == b,
    );
    let gender = errors.pair(
        (&format!("{P}.gender"), person.gender.as_ref()),
        ("gender", req.gender.as_ref()),
        None,
        gender,
        |a, b| a == b,
    );
    let nationality = errors.pair(
        (&format!("{P}.nationality"), person.nationality.as_ref()),
        ("nationality", req.nationality.as_ref()),
        None,
        country,
        |a, b| a == b,
    );
    let place_of_birth = errors.pair(
        (&format!("{P}.placeOfBirth"), person.place_of_birth.as_ref()),
        ("placeOfBirth", req.place_of_birth.as_ref()),
        None,
        text(MAX_TEXT),
        |a, b| a == b,
    );
    let pincode = errors.pair(
        (&format!("{P}.pincode"), person.pincode.as_ref()),
        ("pincode", req.pincode.as_ref()),
        None,
        pincode,
        |a, b| a == b,
    );
    let addresses = addresses(&mut errors, person.addresses.as_deref());

    // Password and its confirmation: top level, or in individualCustomer.user.
    const U: &str = "individualCustomer.user";
    // As everywhere, the nested value wins and a top-level copy that disagrees is the
    // conflict, on the copy's path; the nested value is still checked.
    let mut conflicted = false;
    for (field, top, nested) in [
        ("password", &req.password, &user.password),
        (
            "matchingPassword",
            &req.matching_password,
            &user.matching_password,
        ),
    ] {
        if let (Some(top), Some(nested)) = (top, nested)
            && top != nested
        {
            errors.push(field, conflict(&format!("{U}.{field}")));
            conflicted = true;
        }
    }
    let password = user.password.as_ref().or(req.password.as_ref());
    let matching = user
        .matching_password
        .as_ref()
        .or(req.matching_password.as_ref());
    // Every problem at once: a weak password is reported with a missing or mismatched
    // confirmation, not only once they agree.
    let strong = match password {
        None => {
            errors.push("password", ("WEAK_PASSWORD", "is required".into()));
            None
        }
        Some(p) => {
            let personal: Vec<&str> = [
                email.as_ref().map(Email::local_part),
                first_name.as_ref().map(PersonName::as_str),
                last_name.as_ref().map(PersonName::as_str),
            ]
            .into_iter()
            .flatten()
            .collect();
            match Password::parse(p, &personal) {
                Ok(p) => Some(p),
                Err(problem) => {
                    errors.push("password", ("WEAK_PASSWORD", problem.message().into()));
                    None
                }
            }
        }
    };
    let password = match (password, matching) {
        (_, None) => {
            errors.push(
                "matchingPassword",
                ("PASSWORD_MISMATCH", "is required".into()),
            );
            None
        }
        (None, Some(_)) => None,
        // Whether they match is moot until the copies agree (a confirmation sent only at the
        // top level, beside its password, would "mismatch" the nested password).
        (Some(_), Some(_)) if conflicted => None,
        (Some(p), Some(m)) if p != m => {
            errors.push(
                "matchingPassword",
                ("PASSWORD_MISMATCH", "does not match password".into()),
            );
            None
        }
        (Some(_), Some(_)) => strong,
    };

    let roles = roles(&mut errors, req.role_ids.as_deref(), user.roles.as_deref());
    let categorization = categorization(&mut errors, &req, ic.categorization.as_ref());

    if !errors.0.is_empty() {
        return Err(ApiError::Validation(errors.0));
    }
    match (first_name, last_name, email, phone, password, roles) {
        (
            Some(first_name),
            Some(last_name),
            Some(email),
            Some(phone),
            Some(password),
            Some(roles),
        ) => Ok(NewRegistration {
            first_name,
            last_name,
            email,
            phone,
            password,
            roles,
            date_of_birth,
            gender,
            nationality,
            place_of_birth,
            pincode,
            addresses,
            contacts,
            categorization,
        }),
        // Every `None` above recorded an error, so this is unreachable; stay total anyway.
        _ => Err(ApiError::Validation(vec![])),
    }
}

fn roles(
    errors: &mut Errors,
    top: Option<&[String]>,
    nested: Option<&[String]>,
) -> Option<Vec<Role>> {
    let mut parse = |path: &str, raw: &[String]| -> Option<Vec<Role>> {
        if raw.is_empty() || raw.len() > MAX_ROLES {
            errors.push(
                path,
                ("INVALID_ROLE", format!("must list 1-{MAX_ROLES} roles")),
            );
            return None;
        }
        let mut roles = Vec::new();
        let mut ok = true;
        for (i, r) in raw.iter().enumerate() {
            match Role::parse(r) {
                Some(role) => roles.push(role),
                None => {
                    ok = false;
                    errors.push(
                        format!("{path}[{i}]"),
                        ("INVALID_ROLE", "must be ACCOUNT_OWNER or USER".into()),
                    );
                }
            }
        }
        roles.sort();
        roles.dedup();
        ok.then_some(roles)
    };
    let top_roles = top.map(|r| parse("roleIds", r));
    let nested_roles = nested.map(|r| parse("individualCustomer.user.roles", r));
    match (top_roles, nested_roles) {
        (None, None) => Some(vec![Role::AccountOwner, Role::User]),
        (Some(roles), None) | (None, Some(roles)) => roles,
        (Some(a), Some(b)) => {
            if let (Some(a), Some(b)) = (&a, &b)
                && a != b
            {
                errors.push("roleIds", conflict("individualCustomer.user.roles"));
                return None;
            }
            a.and(b)
        }
    }
}

fn addresses(errors: &mut Errors, raw: Option<&[AddressDto]>) -> Vec<Address> {
    const PATH: &str = "individualCustomer.person.addresses";
    let raw = raw.unwrap_or_default();
    if raw.len() > MAX_ADDRESSES {
        errors.push(
            PATH,
            (
                "INVALID_ADDRESS",
                format!("at most {MAX_ADDRESSES} addresses"),
            ),
        );
        return Vec::new();
    }
    if raw.iter().filter(|a| a.is_primary == Some(true)).count() > 1 {
        errors.push(
            PATH,
            (
                "INVALID_ADDRESS",
                "at most one address may be primary".into(),
            ),
        );
    }
    raw.iter()
        .enumerate()
        .map(|(i, a)| {
            let p = |f: &str| format!("{PATH}[{i}].{f}");
            Address {
                kind: errors
                    .opt(&p("type"), a.kind.as_ref(), text(30))
                    .map(|k| k.to_uppercase()),
                street: errors.opt(&p("street"), a.street.as_ref(), text(MAX_TEXT)),
                street2: errors.opt(&p("street2"), a.street2.as_ref(), text(MAX_TEXT)),
                city: errors.opt(&p("city"), a.city.as_ref(), text(MAX_TEXT)),
                state: errors.opt(&p("state"), a.state.as_ref(), text(MAX_TEXT)),
                postal_code: errors.opt(
                    &p("postalCode"),
                    a.postal_code.as_ref(),
                    text(MAX_PINCODE),
                ),
                country: errors
                    .opt(&p("country"), a.country.as_ref(), country)
                    .map(|c| c.as_str().to_owned()),
                is_primary: a.is_primary.unwrap_or(false),
            }
        })
        .collect()
}

fn contacts(errors: &mut Errors, raw: Option<&[ContactDto]>) -> Vec<Contact> {
    const PATH: &str = "individualCustomer.person.contacts";
    let raw = raw.unwrap_or_default();
    if raw.len() > MAX_CONTACTS {
        errors.push(
            PATH,
            ("INVALID_FIELD", format!("at most {MAX_CONTACTS} contacts")),
        );
        return Vec::new();
    }
    let mut out = Vec::new();
    for (i, c) in raw.iter().enumerate() {
        let kind = c.kind.as_deref().map(|k| k.trim().to_ascii_uppercase());
        let value_path = format!("{PATH}[{i}].value");
        let value = match kind.as_deref() {
            Some("PHONE") => errors
                .opt(
                    &value_path,
                    c.value.as_ref().or(Some(&String::new())),
                    phone,
                )
                .map(|p| p.as_str().to_owned()),
            Some("EMAIL") => errors
                .opt(
                    &value_path,
                    c.value.as_ref().or(Some(&String::new())),
                    email,
                )
                .map(|e| e.as_str().to_owned()),
            _ => {
                errors.push(
                    format!("{PATH}[{i}].type"),
                    ("INVALID_FIELD", "must be PHONE or EMAIL".into()),
                );
                None
            }
        };
        if let (Some(kind), Some(value)) = (kind, value) {
            out.push(Contact {
                kind,
                value,
                is_primary: c.is_primary.unwrap_or(false),
            });
        }
    }
    out
}

fn categorization(
    errors: &mut Errors,
    req: &RegistrationRequest,
    nested: Option<&super::dto::CategorizationDto>,
) -> CategorizationRequest {
    const C: &str = "individualCustomer.categorization";
    let nested_id = errors.opt(
        &format!("{C}.id"),
        nested.and_then(|c| c.id.as_ref()),
        text(MAX_TEXT),
    );
    let top_id = errors.opt(
        "customerCategory.id",
        req.customer_category.as_ref().and_then(|c| c.id.as_ref()),
        text(MAX_TEXT),
    );
    let relations_raw = nested
        .and_then(|c| c.category_feature_relations.as_deref())
        .unwrap_or_default();
    let path = format!("{C}.categoryFeatureRelations");
    if relations_raw.len() > MAX_RELATIONS {
        errors.push(
            path,
            (
                "INVALID_FIELD",
                format!("at most {MAX_RELATIONS} relations"),
            ),
        );
        return CategorizationRequest::default();
    }
    let mut relations = Vec::with_capacity(relations_raw.len());
    for (i, r) in relations_raw.iter().enumerate() {
        let rp = format!("{path}[{i}]");
        let feature = r.feature.as_ref();
        let feature_code = errors.opt(
            &format!("{rp}.feature.code"),
            feature.and_then(|f| f.code.as_ref()),
            text(MAX_TEXT),
        );
        let feature_id = errors.opt(
            &format!("{rp}.feature.id"),
            feature.and_then(|f| f.id.as_ref()),
            text(MAX_TEXT),
        );
        let params_raw = r.parametrization.as_deref().unwrap_or_default();
        if params_raw.len() > MAX_PARAMETERS {
            errors.push(
                format!("{rp}.parametrization"),
                (
                    "INVALID_FIELD",
                    format!("at most {MAX_PARAMETERS} parameters"),
                ),
            );
            continue;
        }
        let mut parameters = Vec::with_capacity(params_raw.len());
        for (j, p) in params_raw.iter().enumerate() {
            let pp = format!("{rp}.parametrization[{j}]");
            let name = match &p.name {
                Some(n) => errors.opt(&format!("{pp}.name"), Some(n), text(MAX_TEXT)),
                None => {
                    errors.push(
                        format!("{pp}.name"),
                        ("INVALID_FIELD", "is required".into()),
                    );
                    None
                }
            };
            let value = match &p.value {
                Some(v) => match parameter_value(v) {
                    Ok(v) => Some(v),
                    Err(problem) => {
                        errors.push(format!("{pp}.value"), problem);
                        None
                    }
                },
                None => {
                    errors.push(
                        format!("{pp}.value"),
                        ("INVALID_FIELD", "is required".into()),
                    );
                    None
                }
            };
            if let (Some(name), Some(value)) = (name, value) {
                parameters.push((name, value));
            }
        }
        relations.push(FeatureRelationRequest {
            feature_code,
            feature_id,
            enabled: r.enabled,
            parameters,
        });
    }
    CategorizationRequest {
        category_id: nested_id.clone().or(top_id.clone()),
        also_category_id: nested_id.and(top_id),
        relations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TENANT: &str = "97e7ff29-15f3-49ef-9681-3bbfcce4f6cd";

    fn contract_body() -> Value {
        json!({
            "firstName": "Marcus", "lastName": "Jensen",
            "email": "marcus.jensen@example.com", "phone": "+37060012345",
            "password": "SecurePass123!", "matchingPassword": "SecurePass123!",
            "roleIds": ["ACCOUNT_OWNER", "USER"],
            "dateOfBirth": "1990-05-15", "gender": "MALE",
            "nationality": "LT", "placeOfBirth": "Vilnius", "pincode": "12345",
            "customerCategory": { "id": "MEDIUM_RISK_INDIVIDUAL" },
            "individualCustomer": {
                "tenantId": TENANT,
                "person": {
                    "firstName": "Marcus", "lastName": "Jensen", "email": "marcus.jensen@example.com",
                    "phone": "+37060012345", "dateOfBirth": "1990-05-15", "gender": "MALE",
                    "nationality": "Lithuania", "placeOfBirth": "Vilnius", "pincode": "12345",
                    "addresses": [ { "type": "HOME", "street": "Gedimino pr. 1", "city": "Vilnius",
                                     "postalCode": "01103", "country": "LT", "isPrimary": true } ],
                    "contacts": [ { "type": "PHONE", "value": "+37060012345", "isPrimary": true } ] },
                "user": { "username": "marcus.jensen@example.com", "roles": ["ACCOUNT_OWNER", "USER"] },
                "categorization": { "id": "MEDIUM_RISK_INDIVIDUAL" } }
        })
    }

    fn run(body: Value) -> Result<NewRegistration, ApiError> {
        let tenant = TenantId::parse(TENANT).unwrap();
        let dto: RegistrationRequest = serde_json::from_value(body).unwrap();
        validate(
            dto,
            &ValidationContext {
                tenant: &tenant,
                today: NaiveDate::from_ymd_opt(2026, 11, 25).unwrap(),
                min_age_years: 18,
            },
        )
    }

    /// Sets (or, with `None`, removes) the value at a `/`-separated path.
    fn with(mut body: Value, path: &str, value: Option<Value>) -> Value {
        let (parent, last) = path.rsplit_once('/').unwrap_or(("", path));
        let target = if parent.is_empty() {
            &mut body
        } else {
            body.pointer_mut(&format!("/{parent}")).unwrap()
        };
        match value {
            Some(v) => {
                if let Ok(i) = last.parse::<usize>() {
                    target[i] = v;
                } else {
                    target[last] = v;
                }
            }
            None => {
                target.as_object_mut().unwrap().remove(last);
            }
        }
        body
    }

    const P: &str = "individualCustomer/person";

    /// One row per rule of §3.2: a change to the contract body and the field error it must
    /// produce (`None`: still valid).
    #[test]
    fn field_rules_of_the_contract() {
        let cases: Vec<(String, Option<Value>, Option<(&str, &str)>)> = vec![
            // Names.
            (
                format!("{P}/firstName"),
                None,
                Some(("individualCustomer.person.firstName", "INVALID_NAME")),
            ),
            (
                format!("{P}/firstName"),
                Some(json!("Mar1cus")),
                Some(("individualCustomer.person.firstName", "INVALID_NAME")),
            ),
            (
                format!("{P}/lastName"),
                Some(json!("x".repeat(101))),
                Some(("individualCustomer.person.lastName", "INVALID_NAME")),
            ),
            (
                "lastName".into(),
                Some(json!("Smith")),
                Some(("lastName", "FIELD_CONFLICT")),
            ),
            // E-mail.
            (
                format!("{P}/email"),
                Some(json!("marcus@")),
                Some(("individualCustomer.person.email", "INVALID_EMAIL")),
            ),
            (
                format!("{P}/email"),
                None,
                Some(("individualCustomer.person.email", "INVALID_EMAIL")),
            ),
            (
                "email".into(),
                Some(json!("MARCUS.JENSEN@EXAMPLE.COM")),
                None,
            ),
            (
                "email".into(),
                Some(json!("other@example.com")),
                Some(("email", "FIELD_CONFLICT")),
            ),
            (
                "individualCustomer/user/username".into(),
                Some(json!("someone@example.com")),
                Some(("individualCustomer.user.username", "FIELD_CONFLICT")),
            ),
            // Phone.
            (
                format!("{P}/phone"),
                Some(json!("12345")),
                Some(("individualCustomer.person.phone", "INVALID_PHONE")),
            ),
            ("phone".into(), Some(json!("+370 600 12345")), None),
            (
                "phone".into(),
                Some(json!("+37060012346")),
                Some(("phone", "FIELD_CONFLICT")),
            ),
            // Password.
            (
                "matchingPassword".into(),
                Some(json!("SecurePass123?")),
                Some(("matchingPassword", "PASSWORD_MISMATCH")),
            ),
            (
                "matchingPassword".into(),
                None,
                Some(("matchingPassword", "PASSWORD_MISMATCH")),
            ),
            ("password".into(), None, Some(("password", "WEAK_PASSWORD"))),
            // Roles.
            (
                "roleIds".into(),
                Some(json!(["ADMIN"])),
                Some(("roleIds[0]", "INVALID_ROLE")),
            ),
            (
                "roleIds".into(),
                Some(json!([])),
                Some(("roleIds", "INVALID_ROLE")),
            ),
            (
                "roleIds".into(),
                Some(json!(["USER", "ACCOUNT_OWNER", "USER"])),
                None,
            ),
            (
                "roleIds".into(),
                Some(json!(["USER"])),
                Some(("roleIds", "FIELD_CONFLICT")),
            ),
            // Date of birth.
            (
                format!("{P}/dateOfBirth"),
                Some(json!("1990-02-30")),
                Some((
                    "individualCustomer.person.dateOfBirth",
                    "INVALID_DATE_OF_BIRTH",
                )),
            ),
            (
                format!("{P}/dateOfBirth"),
                Some(json!("2008-11-26")),
                Some(("individualCustomer.person.dateOfBirth", "UNDERAGE")),
            ),
            (
                "dateOfBirth".into(),
                Some(json!("1990-05-16")),
                Some(("dateOfBirth", "FIELD_CONFLICT")),
            ),
            // Gender.
            (
                format!("{P}/gender"),
                Some(json!("X")),
                Some(("individualCustomer.person.gender", "INVALID_GENDER")),
            ),
            // Countries.
            (
                format!("{P}/nationality"),
                Some(json!("Atlantis")),
                Some(("individualCustomer.person.nationality", "INVALID_COUNTRY")),
            ),
            (
                "nationality".into(),
                Some(json!("LV")),
                Some(("nationality", "FIELD_CONFLICT")),
            ),
            (
                format!("{P}/addresses/0/country"),
                Some(json!("ZZ")),
                Some((
                    "individualCustomer.person.addresses[0].country",
                    "INVALID_COUNTRY",
                )),
            ),
            // Optional text fields.
            (
                format!("{P}/placeOfBirth"),
                Some(json!("x".repeat(101))),
                Some(("individualCustomer.person.placeOfBirth", "INVALID_FIELD")),
            ),
            (
                format!("{P}/pincode"),
                Some(json!("12#45")),
                Some(("individualCustomer.person.pincode", "INVALID_FIELD")),
            ),
            (
                format!("{P}/addresses/0/street"),
                Some(json!("a\u{7}b")),
                Some((
                    "individualCustomer.person.addresses[0].street",
                    "INVALID_FIELD",
                )),
            ),
            // Invisible characters that change what a reader sees (§1.4).
            (
                format!("{P}/placeOfBirth"),
                Some(json!("Vil\u{202E}nius")),
                Some(("individualCustomer.person.placeOfBirth", "INVALID_FIELD")),
            ),
            (
                format!("{P}/addresses/0/postalCode"),
                Some(json!("\u{FEFF}01103")),
                Some((
                    "individualCustomer.person.addresses[0].postalCode",
                    "INVALID_FIELD",
                )),
            ),
            (
                format!("{P}/addresses"),
                Some(json!([{}, {}, {}, {}, {}, {}])),
                Some(("individualCustomer.person.addresses", "INVALID_ADDRESS")),
            ),
            (
                format!("{P}/addresses"),
                Some(json!([{"isPrimary": true}, {"isPrimary": true}])),
                Some(("individualCustomer.person.addresses", "INVALID_ADDRESS")),
            ),
        ];
        for (path, value, expected) in cases {
            let result = run(with(contract_body(), &path, value.clone()));
            match (expected, result) {
                (None, Ok(_)) => {}
                (Some((field, code)), Err(ApiError::Validation(errors))) => assert!(
                    errors.iter().any(|e| e.field == field && e.code == code),
                    "{path} = {value:?}: expected {field} {code}, got {errors:?}"
                ),
                (expected, got) => panic!("{path} = {value:?}: expected {expected:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn a_name_in_two_normalization_forms_is_one_name_stored_in_nfc() {
        let body = with(
            contract_body(),
            &format!("{P}/lastName"),
            Some(json!("Zoe\u{0308}")),
        );
        let body = with(body, "lastName", Some(json!("Zo\u{00EB}")));
        let valid = run(body).expect("no conflict");
        assert_eq!(valid.last_name.as_str(), "Zo\u{00EB}");
    }

    #[test]
    fn the_phone_may_come_from_a_phone_contact() {
        let body = with(
            with(contract_body(), &format!("{P}/phone"), None),
            "phone",
            None,
        );
        assert_eq!(run(body).unwrap().phone.as_str(), "+37060012345");
        let body = with(
            with(
                with(contract_body(), &format!("{P}/phone"), None),
                "phone",
                None,
            ),
            &format!("{P}/contacts"),
            None,
        );
        assert!(matches!(run(body), Err(ApiError::Validation(e)) if e[0].code == "INVALID_PHONE"));
    }

    #[test]
    fn optional_fields_sent_only_at_the_top_level_are_kept() {
        let mut body = contract_body();
        for f in [
            "dateOfBirth",
            "gender",
            "nationality",
            "placeOfBirth",
            "pincode",
        ] {
            body["individualCustomer"]["person"]
                .as_object_mut()
                .unwrap()
                .remove(f);
        }
        let r = run(body).unwrap();
        assert_eq!(r.date_of_birth.unwrap().to_string(), "1990-05-15");
        assert_eq!(r.gender, Some(Gender::Male));
        assert_eq!(r.nationality.unwrap().as_str(), "LT");
        assert_eq!(r.place_of_birth.as_deref(), Some("Vilnius"));
        assert_eq!(r.pincode.as_deref(), Some("12345"));
    }

    #[test]
    fn without_a_primary_the_first_phone_contact_is_the_phone() {
        let mut body = with(
            with(contract_body(), &format!("{P}/phone"), None),
            "phone",
            None,
        );
        body["individualCustomer"]["person"]["contacts"] = json!([
            {"type": "PHONE", "value": "+37060012345"},
            {"type": "PHONE", "value": "+442079460958"}
        ]);
        assert_eq!(run(body).unwrap().phone.as_str(), "+37060012345");
    }

    #[test]
    fn two_disagreeing_password_confirmations_conflict() {
        let mut body = contract_body();
        body["individualCustomer"]["user"]["matchingPassword"] = json!("OtherPass123!!");
        assert!(matches!(run(body), Err(ApiError::Validation(e))
            if e.iter().any(|e| e.field == "matchingPassword" && e.code == "FIELD_CONFLICT")));
    }

    /// Like every other top-level copy: the conflict is on the copy's path, the nested value
    /// wins and is checked, and nothing is reported as missing that was sent.
    #[test]
    fn a_disagreeing_top_level_password_is_the_conflict_and_the_nested_one_is_checked() {
        let found = |body: Value| -> Vec<(String, String)> {
            match run(body) {
                Err(ApiError::Validation(errors)) => errors
                    .into_iter()
                    .map(|e| (e.field, e.code.to_owned()))
                    .collect(),
                other => panic!("{other:?}"),
            }
        };
        let pair = |f: &str, c: &str| (f.to_owned(), c.to_owned());
        let mut body = contract_body();
        body["individualCustomer"]["user"]["password"] = json!("OtherPass123!!");
        body["individualCustomer"]["user"]["matchingPassword"] = json!("OtherPass123!!");
        assert_eq!(
            found(body.clone()),
            [
                pair("password", "FIELD_CONFLICT"),
                pair("matchingPassword", "FIELD_CONFLICT")
            ]
        );
        body["individualCustomer"]["user"]["password"] = json!("weak");
        body["individualCustomer"]["user"]["matchingPassword"] = json!("weak");
        assert_eq!(
            found(body),
            [
                pair("password", "FIELD_CONFLICT"),
                pair("matchingPassword", "FIELD_CONFLICT"),
                pair("password", "WEAK_PASSWORD"),
            ],
            "the nested password is the one checked"
        );
        // A confirmation beside the top-level copy does not "mismatch" the nested password:
        // the conflict is the problem.
        let mut body = contract_body();
        body["individualCustomer"]["user"]["password"] = json!("OtherPass123!!");
        assert_eq!(found(body), [pair("password", "FIELD_CONFLICT")]);
        // Neither sent: both are required.
        let body = with(
            with(contract_body(), "password", None),
            "matchingPassword",
            None,
        );
        assert_eq!(
            found(body),
            [
                pair("password", "WEAK_PASSWORD"),
                pair("matchingPassword", "PASSWORD_MISMATCH")
            ]
        );
    }

    /// §3.2: all problems in one answer. A weak password used to be reported only once its
    /// confirmation matched.
    #[test]
    fn a_weak_password_is_reported_with_its_confirmation_problem() {
        let cases = [
            (Some(json!("short2")), "does not match password"),
            (None, "is required"),
        ];
        for (matching, message) in cases {
            let body = with(
                with(contract_body(), "password", Some(json!("short"))),
                "matchingPassword",
                matching,
            );
            match run(body) {
                Err(ApiError::Validation(errors)) => {
                    let got: Vec<(&str, &str, &str)> = errors
                        .iter()
                        .map(|e| (e.field.as_str(), e.code, e.message.as_str()))
                        .collect();
                    assert_eq!(got.len(), 2, "{got:?}");
                    assert_eq!(got[0].0, "password");
                    assert_eq!(got[0].1, "WEAK_PASSWORD");
                    assert_eq!(got[1], ("matchingPassword", "PASSWORD_MISMATCH", message));
                }
                other => panic!("{message}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_password_may_come_from_the_user_object() {
        let mut body = with(
            with(contract_body(), "password", None),
            "matchingPassword",
            None,
        );
        body["individualCustomer"]["user"]["password"] = json!("SecurePass123!");
        body["individualCustomer"]["user"]["matchingPassword"] = json!("SecurePass123!");
        assert!(run(body).is_ok());
    }

    #[test]
    fn passwords_with_the_name_or_email_are_weak() {
        for password in ["Jensen!Pass123", "xMARCUS.JENSEN1!x"] {
            let body = with(
                with(contract_body(), "password", Some(json!(password))),
                "matchingPassword",
                Some(json!(password)),
            );
            match run(body) {
                Err(ApiError::Validation(errors)) => {
                    assert_eq!(errors[0].code, "WEAK_PASSWORD");
                    assert!(
                        !errors[0].message.contains(password),
                        "never echo the password"
                    );
                }
                other => panic!("{password}: {other:?}"),
            }
        }
    }

    #[test]
    fn values_are_normalized_for_storage() {
        let r = run(contract_body()).unwrap();
        assert_eq!(r.nationality.unwrap().as_str(), "LT");
        assert_eq!(r.roles, vec![Role::AccountOwner, Role::User]);
        // Repeated roles are one role each, in one order.
        let mut repeated = contract_body();
        repeated["roleIds"] = json!(["USER", "ACCOUNT_OWNER", "USER"]);
        assert_eq!(
            run(repeated).unwrap().roles,
            vec![Role::AccountOwner, Role::User]
        );
        assert_eq!(r.addresses[0].country.as_deref(), Some("LT"));
        assert_eq!(
            r.categorization.category_id.as_deref(),
            Some("MEDIUM_RISK_INDIVIDUAL")
        );
    }

    #[test]
    fn roles_default_to_account_owner_and_user() {
        let mut body = with(contract_body(), "roleIds", None);
        body["individualCustomer"]["user"]
            .as_object_mut()
            .unwrap()
            .remove("roles");
        assert_eq!(
            run(body).unwrap().roles,
            vec![Role::AccountOwner, Role::User]
        );
    }

    #[test]
    fn a_missing_person_is_required_and_a_flat_one_is_not_supported() {
        let mut body = contract_body();
        body["individualCustomer"]
            .as_object_mut()
            .unwrap()
            .remove("person");
        assert_eq!(run(body).unwrap_err(), ApiError::FlatObjectNotSupported);
        let body = json!({"password": "SecurePass123!"});
        assert_eq!(run(body).unwrap_err(), ApiError::FlatObjectNotSupported);
        // An empty person object with the person fields at the top level is flat too.
        let mut body = contract_body();
        body["individualCustomer"]["person"] = json!({});
        body["email"] = json!("marcus.jensen@example.com");
        assert_eq!(run(body).unwrap_err(), ApiError::FlatObjectNotSupported);
    }

    #[test]
    fn a_body_tenant_other_than_the_callers_is_forbidden_and_a_malformed_one_invalid() {
        let cases = [
            ("other", ApiError::TenantMismatch),
            ("t#1", ApiError::InvalidTenantId),
            ("", ApiError::InvalidTenantId),
            (&"t".repeat(65), ApiError::InvalidTenantId),
        ];
        for (tenant, expected) in cases {
            let body = with(
                contract_body(),
                "individualCustomer/tenantId",
                Some(json!(tenant)),
            );
            assert_eq!(run(body).unwrap_err(), expected, "{tenant:?}");
        }
    }

    #[test]
    fn parameter_values_may_be_numbers_or_booleans() {
        let mut body = contract_body();
        body["individualCustomer"]["categorization"]["categoryFeatureRelations"] = json!([
            {"feature": {"code": "MEDIUM_RISK_PROFILE"},
             "parametrization": [{"name": "riskScore", "value": 55}, {"name": "pep", "value": false}]}
        ]);
        let r = run(body).unwrap();
        assert_eq!(
            r.categorization.relations[0].parameters,
            vec![
                ("riskScore".to_owned(), "55".to_owned()),
                ("pep".to_owned(), "false".to_owned())
            ]
        );
        let mut body = contract_body();
        body["individualCustomer"]["categorization"]["categoryFeatureRelations"] = json!([
            {"feature": {"code": "X"}, "parametrization": [{"name": "a", "value": {"nested": 1}}]}
        ]);
        assert!(
            matches!(run(body), Err(ApiError::Validation(e)) if e[0].field.ends_with("parametrization[0].value"))
        );
    }
}
