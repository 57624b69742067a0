//! Hostile input, end to end: every row sends one malicious or malformed request through the
//! local gateway and expects the contract's 4xx with a stable `data.error` code (never a 5xx,
//! never a panic), in the contract's envelope, and leaves the table (both tenants' items, the
//! customer item included) and the mailbox exactly as they were.
//!
//! Rows are grouped in tables, one test per table; a table runs every row and reports every
//! failing row at once.

use std::cell::Cell;
use std::time::Duration;

use base64::Engine as _;
use chrono::{Months, NaiveDate};
use local_gateway::LocalAuthorizer;
use reqwest::Method;
use reqwest::header::HeaderValue;
use serde_json::{Value, json};

use super::support::{REGISTRATION, Stack, contract_body, hierarchy_path};

/// Acceptable `(status, data.error)` answers of a row (one, unless the contract allows two).
type Expect = &'static [(u16, &'static str)];

const MALFORMED: Expect = &[(400, "MALFORMED_JSON")];
/// A body that is valid JSON text but unusable (too deep, duplicate keys, …): either reading
/// of §1.4 is a correct, stable 400.
const MALFORMED_OR_INVALID: Expect = &[(400, "MALFORMED_JSON"), (400, "VALIDATION_FAILED")];
const INVALID: Expect = &[(400, "VALIDATION_FAILED")];
const TOO_LARGE: Expect = &[(413, "PAYLOAD_TOO_LARGE")];
const INVALID_OR_TOO_LARGE: Expect = &[(400, "VALIDATION_FAILED"), (413, "PAYLOAD_TOO_LARGE")];
const PARAMETERS_REFUSED: Expect = &[
    (400, "VALIDATION_FAILED"),
    (400, "CATEGORIZATION_INVALID"),
    (413, "PAYLOAD_TOO_LARGE"),
];
const CATEGORIZATION: Expect = &[(400, "CATEGORIZATION_INVALID")];
const CATEGORY_NOT_FOUND: Expect = &[(400, "CATEGORY_NOT_FOUND")];
const UNSUPPORTED: Expect = &[(415, "UNSUPPORTED_MEDIA_TYPE")];
const UNAUTHORIZED: Expect = &[(401, "UNAUTHORIZED")];
const MISMATCH: Expect = &[(403, "TENANT_MISMATCH")];
const SCOPE: Expect = &[(403, "INSUFFICIENT_SCOPE")];
const BAD_TENANT: Expect = &[(400, "INVALID_TENANT_ID")];
/// A header value the gateway cannot pass on as text arrives as no header at all.
const BAD_OR_MISSING_TENANT: Expect = &[(400, "INVALID_TENANT_ID"), (400, "MISSING_HEADERS")];
const BAD_OR_MISMATCHED_TENANT: Expect = &[(400, "INVALID_TENANT_ID"), (403, "TENANT_MISMATCH")];
const MISSING_HEADERS: Expect = &[(400, "MISSING_HEADERS")];
const NO_CUSTOMER: Expect = &[(404, "CUSTOMER_NOT_FOUND")];
const NO_ROUTE: Expect = &[(404, "ROUTE_NOT_FOUND")];
const NO_METHOD: Expect = &[(405, "METHOD_NOT_ALLOWED")];

/// Any field code, when only the path of a type error is specified by the contract.
const ANY: &str = "*";
const ALL_SCOPES: [&str; 3] = [
    "onboarding/categorization.read",
    "onboarding/customers.write",
    "onboarding/customers.activate",
];
const MIB: usize = 1024 * 1024;

/// One request, fully built: every header is explicit so a row can drop or corrupt any of them.
#[derive(Clone)]
struct Req {
    method: Method,
    path: String,
    headers: Vec<(&'static str, HeaderValue)>,
    body: Vec<u8>,
}

impl Req {
    fn set(mut self, name: &'static str, value: HeaderValue) -> Self {
        self = self.unset(name);
        self.headers.push((name, value));
        self
    }

    fn set_str(self, name: &'static str, value: &str) -> Self {
        self.set(
            name,
            HeaderValue::from_str(value).expect("a sendable header value"),
        )
    }

    fn add_str(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((
            name,
            HeaderValue::from_str(value).expect("a sendable header"),
        ));
        self
    }

    fn unset(mut self, name: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }

    fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }

    fn auth(self, value: &str) -> Self {
        self.set_str("authorization", value)
    }

    fn tenant(self, value: &str) -> Self {
        self.set_str("x-tenant-id", value)
    }

    fn content_type(self, value: &str) -> Self {
        self.set_str("content-type", value)
    }
}

/// One row: a name, the request, the acceptable answers and, optionally, a field error
/// (`field`, `code`) that `data.errors[]` must contain.
struct Case {
    name: String,
    req: Req,
    expect: Expect,
    field: Option<(&'static str, &'static str)>,
}

fn case(name: impl Into<String>, req: Req, expect: Expect) -> Case {
    Case {
        name: name.into(),
        req,
        expect,
        field: None,
    }
}

impl Case {
    fn field(mut self, path: &'static str, code: &'static str) -> Self {
        self.field = Some((path, code));
        self
    }
}

/// What the rows of a table are built from.
struct Ctx {
    tenant: String,
    other: String,
    customer: String,
    email: String,
    code: String,
    today: NaiveDate,
    authorizer: LocalAuthorizer,
    emails: Cell<u32>,
}

impl Ctx {
    fn new(stack: &Stack, tenant: &str, other: &str, customer: &str, email: &str) -> Self {
        let code = if customer.is_empty() {
            "12345678".to_owned()
        } else {
            stack.code_for(customer)
        };
        Self {
            tenant: tenant.to_owned(),
            other: other.to_owned(),
            customer: if customer.is_empty() {
                uuid::Uuid::new_v4().to_string()
            } else {
                customer.to_owned()
            },
            email: email.to_owned(),
            code,
            today: stack.clock_now().date_naive(),
            authorizer: stack.authorizer.clone(),
            emails: Cell::new(0),
        }
    }

    // ---- tokens ----

    fn bearer_of(&self, tenant: &str, scopes: &[&str]) -> String {
        format!("Bearer {}", self.authorizer.mint(tenant, scopes, 3600))
    }

    fn bearer(&self) -> String {
        self.bearer_of(&self.tenant, &ALL_SCOPES)
    }

    fn claims(&self, extra: Value) -> Value {
        let now = chrono::Utc::now().timestamp();
        let mut claims = json!({
            "iss": self.authorizer.issuer, "aud": self.authorizer.audience,
            "sub": "hostile", "iat": now, "exp": now + 3600,
            "tenant_id": self.tenant, "scope": ALL_SCOPES.join(" "),
        });
        for (k, v) in extra.as_object().expect("claims object") {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        claims
    }

    fn signed(&self, extra: Value) -> String {
        format!("Bearer {}", self.authorizer.sign(&self.claims(extra)))
    }

    /// The right claims, signed with a key the gateway does not hold.
    fn forged(&self) -> String {
        let other = LocalAuthorizer::new(
            &self.authorizer.issuer,
            &self.authorizer.audience,
            "an-attackers-own-secret",
            "tenant_id",
        );
        format!("Bearer {}", other.sign(&self.claims(json!({}))))
    }

    /// `alg: none`, no signature.
    fn unsigned(&self) -> String {
        let b64 = |v: &Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
        };
        let header = json!({"alg": "none", "typ": "JWT"});
        format!("Bearer {}.{}.", b64(&header), b64(&self.claims(json!({}))))
    }

    fn expired(&self) -> String {
        let now = chrono::Utc::now().timestamp();
        self.signed(json!({"iat": now - 3600, "exp": now - 10}))
    }

    // ---- requests ----

    fn base(&self, method: Method, path: String, body: Vec<u8>) -> Req {
        let v = |s: &str| HeaderValue::from_str(s).unwrap();
        Req {
            method,
            path,
            headers: vec![
                ("authorization", v(&self.bearer())),
                ("x-tenant-id", v(&self.tenant)),
                ("content-type", v("application/json")),
                ("x-forwarded-from", v("web-app")),
                ("platform", v("web")),
                ("deviceid", v("device-hostile")),
                ("user-agent", v("e2e-hostile/1.0")),
            ],
            body,
        }
    }

    fn post(&self, path: String, body: impl Into<Vec<u8>>) -> Req {
        self.base(Method::POST, path, body.into())
    }

    fn get(&self, path: String) -> Req {
        self.base(Method::GET, path, Vec::new())
            .unset("content-type")
    }

    fn hierarchy(&self, path_tenant: &str) -> Req {
        self.get(hierarchy_path(path_tenant))
    }

    /// A fresh, valid registration body (a new e-mail each time, so one wrongly accepted row
    /// cannot turn the next rows into 409s).
    fn body(&self) -> Value {
        let n = self.emails.get() + 1;
        self.emails.set(n);
        contract_body(&self.tenant, &format!("hostile{n}@example.com"))
    }

    fn register(&self, body: &Value) -> Req {
        self.post(REGISTRATION.to_owned(), body.to_string())
    }

    fn register_raw(&self, body: impl Into<Vec<u8>>) -> Req {
        self.post(REGISTRATION.to_owned(), body)
    }

    /// The valid body with `pointer` set to `value` (and the top-level copy of a person field
    /// removed, so the nested path is the one reported).
    fn register_with(&self, pointer: &str, value: Value) -> Req {
        let mut body = self.body();
        set(&mut body, pointer, value);
        if let Some(field) = pointer.strip_prefix("/individualCustomer/person/")
            && !field.contains('/')
        {
            body.as_object_mut().unwrap().remove(field);
        }
        self.register(&body)
    }

    fn activation_path(&self, customer: &str) -> String {
        format!("/api/v2.1/customer/individual/{customer}/activation")
    }

    fn resend_path(&self, customer: &str) -> String {
        format!("/api/v2.1/customer/individual/{customer}/activation/code")
    }

    fn activate(&self, body: &Value) -> Req {
        self.post(self.activation_path(&self.customer), body.to_string())
    }

    fn activate_raw(&self, body: impl Into<Vec<u8>>) -> Req {
        self.post(self.activation_path(&self.customer), body)
    }

    /// The right user and the right code: only the hostile part of a row may refuse it.
    fn good_activation(&self) -> Value {
        json!({ "userId": self.email, "code": self.code })
    }

    fn resend(&self, body: &Value) -> Req {
        self.post(self.resend_path(&self.customer), body.to_string())
    }

    fn resend_raw(&self, body: impl Into<Vec<u8>>) -> Req {
        self.post(self.resend_path(&self.customer), body)
    }

    fn good_resend(&self) -> Value {
        json!({ "userId": self.email })
    }
}

/// Sets the value at a JSON pointer, creating the last key (or replacing an array element).
fn set(body: &mut Value, pointer: &str, value: Value) {
    let (parent, last) = pointer.rsplit_once('/').expect("a JSON pointer");
    let target = body
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("{parent} exists"));
    match target {
        Value::Array(items) => items[last.parse::<usize>().expect("an index")] = value,
        Value::Object(map) => {
            map.insert(last.to_owned(), value);
        }
        other => panic!("{parent} is {other}"),
    }
}

fn without(mut body: Value, pointer: &str) -> Value {
    let (parent, last) = pointer.rsplit_once('/').expect("a JSON pointer");
    body.pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .expect("an object")
        .remove(last);
    body
}

/// `depth` nested arrays around `1`.
fn nested_arrays(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

/// A valid JSON object of exactly `len` bytes.
fn json_of_len(len: usize) -> String {
    let frame = "{\"padding\":\"\"}".len();
    format!("{{\"padding\":\"{}\"}}", "a".repeat(len - frame))
}

/// The registration body as text, with `marker` (a JSON string literal in the body)
/// replaced by raw bytes.
fn with_raw_bytes(body: &Value, marker: &str, raw: &[u8]) -> Vec<u8> {
    let text = body.to_string();
    let at = text.find(marker).expect("marker in body");
    let mut bytes = text.as_bytes()[..at].to_vec();
    bytes.extend_from_slice(raw);
    bytes.extend_from_slice(&text.as_bytes()[at + marker.len()..]);
    bytes
}

fn params(body: &mut Value, parametrization: Value) {
    set(
        body,
        "/individualCustomer/categorization/categoryFeatureRelations/0/parametrization",
        parametrization,
    );
}

// ---------------------------------------------------------------------------------------------
// The tables.

/// §1.4 request hygiene on the registration body: syntax, encoding, depth, size, JSON types.
fn registration_body_cases(ctx: &Ctx) -> Vec<Case> {
    let valid = ctx.body();
    let text = valid.to_string();
    let firstname_marker = "\"firstName\":\"Marcus\",\"lastName\":\"Jensen\",\"email\"";
    let mut cases = vec![
        case(
            "truncated JSON",
            ctx.register_raw(text[..text.len() / 2].to_owned()),
            MALFORMED,
        ),
        case("empty body", ctx.register_raw(""), MALFORMED),
        case(
            "only whitespace",
            ctx.register_raw(" \n\t "),
            MALFORMED,
        ),
        case(
            "trailing comma",
            ctx.register_raw(format!("{},}}", &text[..text.len() - 1])),
            MALFORMED,
        ),
        case(
            "single-quoted strings",
            ctx.register_raw("{'individualCustomer': {'person': {}}}"),
            MALFORMED,
        ),
        case(
            "NaN literal",
            ctx.register_raw("{\"individualCustomer\": NaN}"),
            MALFORMED,
        ),
        case(
            "a comment",
            ctx.register_raw(format!("/* hi */{text}")),
            MALFORMED,
        ),
        case(
            "two JSON documents",
            ctx.register_raw(format!("{text}{text}")),
            MALFORMED,
        ),
        case(
            "an unescaped newline inside a string",
            ctx.register_raw(with_raw_bytes(&valid, "Vilnius", b"Vil\nnius")),
            MALFORMED,
        ),
        case(
            "a lone UTF-16 surrogate escape in a name",
            ctx.register_raw(text.replacen("\"Marcus\"", "\"Mar\\ud800cus\"", 2)),
            &[
                (400, "MALFORMED_JSON"),
                (400, "VALIDATION_FAILED"),
            ],
        ),
        case(
            "invalid UTF-8 bytes in a name",
            ctx.register_raw(with_raw_bytes(&valid, "Marcus", b"Mar\xff\xfecus")),
            MALFORMED,
        ),
        case(
            "an overlong UTF-8 encoding of '/'",
            ctx.register_raw(with_raw_bytes(&valid, "Vilnius", b"Vil\xc0\xafnius")),
            MALFORMED,
        ),
        case(
            "a lone UTF-8 continuation byte outside strings",
            ctx.register_raw([b"\x80".as_slice(), text.as_bytes()].concat()),
            MALFORMED,
        ),
        case(
            "the body in UTF-16LE",
            ctx.register_raw(
                text.encode_utf16()
                    .flat_map(u16::to_le_bytes)
                    .collect::<Vec<u8>>(),
            ),
            MALFORMED,
        ),
        case(
            "10 000 nested arrays as the body",
            ctx.register_raw(nested_arrays(10_000)),
            MALFORMED_OR_INVALID,
        ),
        case(
            "10 000 nested arrays in an unknown field",
            ctx.register_raw(format!(
                "{},\"extra\":{}}}",
                &text[..text.len() - 1],
                nested_arrays(10_000)
            )),
            MALFORMED_OR_INVALID,
        ),
        case(
            "5 000 nested objects as a first name",
            ctx.register_raw(text.replacen(
                firstname_marker,
                &format!(
                    "\"firstName\":{}1{},\"lastName\":\"Jensen\",\"email\"",
                    "{\"a\":".repeat(5_000),
                    "}".repeat(5_000)
                ),
                1,
            )),
            MALFORMED_OR_INVALID,
        ),
        case(
            "a duplicate individualCustomer key",
            ctx.register_raw(format!(
                "{{\"individualCustomer\":{{\"tenantId\":\"{}\"}},{}",
                ctx.tenant,
                &text[1..]
            )),
            MALFORMED_OR_INVALID,
        ),
        case(
            "a number out of range",
            ctx.register_raw(text.replacen("\"55\"", "1e999", 1)),
            &[
                (400, "MALFORMED_JSON"),
                (400, "VALIDATION_FAILED"),
                (400, "CATEGORIZATION_INVALID"),
            ],
        ),
        case(
            "a 1 MB valid JSON body",
            ctx.register_raw(json_of_len(MIB)),
            TOO_LARGE,
        ),
        case(
            "a 1 MB registration (padding in an unknown field)",
            ctx.register_raw(format!(
                "{},\"padding\":\"{}\"}}",
                &text[..text.len() - 1],
                "x".repeat(MIB)
            )),
            TOO_LARGE,
        ),
        case(
            "1 MB of garbage",
            ctx.register_raw(vec![b'{'; MIB]),
            TOO_LARGE,
        ),
        case(
            "1 MB of invalid UTF-8",
            ctx.register_raw(vec![0xff; MIB]),
            TOO_LARGE,
        ),
        case(
            "64 KiB + 1 byte",
            ctx.register_raw(json_of_len(64 * 1024 + 1)),
            TOO_LARGE,
        ),
        case("a JSON array as the body", ctx.register_raw("[]"), INVALID),
        case("JSON null as the body", ctx.register_raw("null"), INVALID),
        case(
            "a JSON string as the body",
            ctx.register_raw("\"register me\""),
            INVALID,
        ),
        // Wrong JSON types at several paths.
        case(
            "a first name as a number",
            ctx.register_with("/individualCustomer/person/firstName", json!(42)),
            INVALID,
        )
        .field("individualCustomer.person.firstName", ANY),
        case(
            "a last name as a boolean",
            ctx.register_with("/individualCustomer/person/lastName", json!(true)),
            INVALID,
        )
        .field("individualCustomer.person.lastName", ANY),
        case(
            "a first name as an array of strings",
            ctx.register_with("/individualCustomer/person/firstName", json!(["Marcus"])),
            INVALID,
        )
        .field("individualCustomer.person.firstName", ANY),
        case(
            "individualCustomer as an array",
            ctx.register_with("/individualCustomer", json!([])),
            INVALID,
        )
        .field("individualCustomer", ANY),
        case(
            "person as a string",
            ctx.register_with("/individualCustomer/person", json!("Marcus Jensen")),
            INVALID,
        )
        .field("individualCustomer.person", ANY),
        case(
            "addresses as an object",
            ctx.register_with(
                "/individualCustomer/person/addresses",
                json!({"street": "Gedimino pr. 1"}),
            ),
            INVALID,
        )
        .field("individualCustomer.person.addresses", ANY),
        case(
            "an e-mail as an operator object",
            ctx.register_with("/individualCustomer/person/email", json!({"$ne": null})),
            INVALID,
        )
        .field("individualCustomer.person.email", ANY),
        case(
            "customerCategory as a string",
            ctx.register_with("/customerCategory", json!("MEDIUM_RISK_INDIVIDUAL")),
            INVALID,
        )
        .field("customerCategory", ANY),
        case(
            "the password as an array",
            ctx.register_with("/password", json!(["SecurePass123!"])),
            INVALID,
        )
        .field("password", ANY),
        case(
            "isPrimary as a string",
            ctx.register_with(
                "/individualCustomer/person/addresses/0/isPrimary",
                json!("yes"),
            ),
            INVALID,
        )
        .field("individualCustomer.person.addresses[0].isPrimary", ANY),
        case(
            "roleIds as a string",
            ctx.register_with("/roleIds", json!("ACCOUNT_OWNER")),
            INVALID,
        )
        .field("roleIds", ANY),
        case(
            "parametrization as an object",
            ctx.register_with(
                "/individualCustomer/categorization/categoryFeatureRelations/0/parametrization",
                json!({"riskLevel": "MEDIUM"}),
            ),
            INVALID,
        )
        .field(
            "individualCustomer.categorization.categoryFeatureRelations[0].parametrization",
            ANY,
        ),
        case(
            "a parameter value as an object",
            ctx.register_with(
                "/individualCustomer/categorization/categoryFeatureRelations/0/parametrization/0/value",
                json!({"$gt": ""}),
            ),
            INVALID,
        )
        .field(
            "individualCustomer.categorization.categoryFeatureRelations[0].parametrization[0].value",
            ANY,
        ),
    ];

    // Huge arrays: refused quickly, as a 400 or a 413.
    let empties = |n: usize| Value::Array(vec![json!({}); n]);
    cases.push(
        case(
            "10 000 addresses",
            ctx.register_with("/individualCustomer/person/addresses", empties(10_000)),
            INVALID_OR_TOO_LARGE,
        )
        .field("individualCustomer.person.addresses", "INVALID_ADDRESS"),
    );
    cases.push(case(
        "10 000 contacts",
        ctx.register_with("/individualCustomer/person/contacts", empties(10_000)),
        INVALID_OR_TOO_LARGE,
    ));
    cases.push(case(
        "10 000 empty roles",
        ctx.register_with("/roleIds", Value::Array(vec![json!(""); 10_000])),
        INVALID_OR_TOO_LARGE,
    ));
    cases.push(case(
        "10 000 feature relations",
        ctx.register_with(
            "/individualCustomer/categorization/categoryFeatureRelations",
            empties(10_000),
        ),
        PARAMETERS_REFUSED,
    ));
    let mut body = ctx.body();
    params(&mut body, empties(10_000));
    cases.push(case(
        "10 000 empty parametrization entries",
        ctx.register(&body),
        PARAMETERS_REFUSED,
    ));
    let mut body = ctx.body();
    params(
        &mut body,
        Value::Array(vec![
            json!({"name": "riskLevel", "value": "MEDIUM"});
            10_000
        ]),
    );
    cases.push(case(
        "10 000 parametrization entries",
        ctx.register(&body),
        PARAMETERS_REFUSED,
    ));
    cases
}

/// §3.2 / §3.3 field rules under attack: control characters, lengths, dates, phones,
/// countries, categorization.
fn registration_field_cases(ctx: &Ctx) -> Vec<Case> {
    let person = |field: &str, value: Value| {
        ctx.register_with(&format!("/individualCustomer/person/{field}"), value)
    };
    let address = |field: &str, value: Value| {
        ctx.register_with(
            &format!("/individualCustomer/person/addresses/0/{field}"),
            value,
        )
    };
    let long = "a".repeat(10_000);
    let today = ctx.today;
    let years_ago = |years: u32| {
        today
            .checked_sub_months(Months::new(years * 12))
            .expect("a date")
    };
    let underage_by_a_day = years_ago(18) + chrono::Duration::days(1);
    let too_old = years_ago(121);
    let tomorrow = today + chrono::Duration::days(1);
    let date = |d: NaiveDate| json!(d.format("%Y-%m-%d").to_string());

    let mut cases = vec![
        // Control characters and other invisible tricks.
        case(
            "a NUL in the first name",
            person("firstName", json!("Mar\u{0}cus")),
            INVALID,
        )
        .field("individualCustomer.person.firstName", "INVALID_NAME"),
        case(
            "a newline in the last name",
            person("lastName", json!("Jen\nsen")),
            INVALID,
        )
        .field("individualCustomer.person.lastName", "INVALID_NAME"),
        case(
            "a right-to-left override in the first name",
            person("firstName", json!("\u{202e}sucraM")),
            INVALID,
        )
        .field("individualCustomer.person.firstName", "INVALID_NAME"),
        case(
            "an escape sequence in the last name",
            person("lastName", json!("\u{1b}[2JJensen")),
            INVALID,
        )
        .field("individualCustomer.person.lastName", "INVALID_NAME"),
        case(
            "a NUL in the e-mail",
            person("email", json!("marcus\u{0}@example.com")),
            INVALID,
        )
        .field("individualCustomer.person.email", "INVALID_EMAIL"),
        case(
            "a CRLF header injection in the e-mail",
            person(
                "email",
                json!("marcus@example.com\r\nBcc: everyone@example.com"),
            ),
            INVALID,
        )
        .field("individualCustomer.person.email", "INVALID_EMAIL"),
        case(
            "a display name in the e-mail",
            person("email", json!("Marcus <marcus@example.com>")),
            INVALID,
        )
        .field("individualCustomer.person.email", "INVALID_EMAIL"),
        case(
            "a BEL in the street",
            address("street", json!("Gedimino\u{7} pr. 1")),
            INVALID,
        )
        .field(
            "individualCustomer.person.addresses[0].street",
            "INVALID_FIELD",
        ),
        case(
            "an escape sequence in the city",
            address("city", json!("Vilnius\u{1b}[31m")),
            INVALID,
        )
        .field(
            "individualCustomer.person.addresses[0].city",
            "INVALID_FIELD",
        ),
        case(
            "a NUL in the place of birth",
            person("placeOfBirth", json!("Vil\u{0}nius")),
            INVALID,
        )
        .field("individualCustomer.person.placeOfBirth", "INVALID_FIELD"),
        case(
            "a zero-width space in the place of birth",
            person("placeOfBirth", json!("Vil\u{200b}nius")),
            INVALID,
        )
        .field("individualCustomer.person.placeOfBirth", "INVALID_FIELD"),
        case(
            "a byte order mark before the pincode",
            person("pincode", json!("\u{feff}12345")),
            INVALID,
        )
        .field("individualCustomer.person.pincode", "INVALID_FIELD"),
        case(
            "a zero-width joiner inside a Latin first name",
            person("firstName", json!("Mar\u{200d}cus")),
            INVALID,
        )
        .field("individualCustomer.person.firstName", "INVALID_NAME"),
        case(
            "a variation selector in the last name",
            person("lastName", json!("Jen\u{fe0f}sen")),
            INVALID,
        )
        .field("individualCustomer.person.lastName", "INVALID_NAME"),
        case(
            "a NUL in the postal code",
            address("postalCode", json!("01103\u{0}")),
            INVALID,
        )
        .field(
            "individualCustomer.person.addresses[0].postalCode",
            "INVALID_FIELD",
        ),
        case(
            "a NUL in the password (and its confirmation)",
            {
                let mut body = ctx.body();
                body["password"] = json!("SecurePass123!\u{0}");
                body["matchingPassword"] = json!("SecurePass123!\u{0}");
                ctx.register(&body)
            },
            INVALID,
        )
        .field("password", ANY),
        // Lengths.
        case(
            "a 10 000-character first name",
            person("firstName", json!(long)),
            INVALID,
        )
        .field("individualCustomer.person.firstName", "INVALID_NAME"),
        case(
            "a 101-character last name",
            person("lastName", json!("a".repeat(101))),
            INVALID,
        )
        .field("individualCustomer.person.lastName", "INVALID_NAME"),
        case(
            "a 10 000-character e-mail",
            person("email", json!(format!("{long}@example.com"))),
            INVALID,
        )
        .field("individualCustomer.person.email", "INVALID_EMAIL"),
        case(
            "a 255-character e-mail",
            person(
                "email",
                json!(format!(
                    "{}@{}.{}.{}.com",
                    "a".repeat(64),
                    "b".repeat(63),
                    "c".repeat(63),
                    "d".repeat(58)
                )),
            ),
            INVALID,
        )
        .field("individualCustomer.person.email", "INVALID_EMAIL"),
        case(
            "a 10 000-character street",
            address("street", json!(long)),
            INVALID,
        )
        .field(
            "individualCustomer.person.addresses[0].street",
            "INVALID_FIELD",
        ),
        case(
            "a 10 000-character password",
            {
                let mut body = ctx.body();
                let password = format!("Aa1!{long}");
                body["password"] = json!(password);
                body["matchingPassword"] = json!(password);
                ctx.register(&body)
            },
            INVALID,
        )
        .field("password", "WEAK_PASSWORD"),
        // Dates of birth.
        case(
            "30 February",
            person("dateOfBirth", json!("1990-02-30")),
            INVALID,
        )
        .field(
            "individualCustomer.person.dateOfBirth",
            "INVALID_DATE_OF_BIRTH",
        ),
        case(
            "year 0000",
            person("dateOfBirth", json!("0000-01-01")),
            INVALID,
        )
        .field(
            "individualCustomer.person.dateOfBirth",
            "INVALID_DATE_OF_BIRTH",
        ),
        case(
            "9999-12-31",
            person("dateOfBirth", json!("9999-12-31")),
            INVALID,
        )
        .field(
            "individualCustomer.person.dateOfBirth",
            "INVALID_DATE_OF_BIRTH",
        ),
        case(
            "born tomorrow",
            person("dateOfBirth", date(tomorrow)),
            INVALID,
        )
        .field(
            "individualCustomer.person.dateOfBirth",
            "INVALID_DATE_OF_BIRTH",
        ),
        case(
            "underage by exactly one day",
            person("dateOfBirth", date(underage_by_a_day)),
            INVALID,
        )
        .field("individualCustomer.person.dateOfBirth", "UNDERAGE"),
        case(
            "121 years old",
            person("dateOfBirth", date(too_old)),
            INVALID,
        )
        .field(
            "individualCustomer.person.dateOfBirth",
            "INVALID_DATE_OF_BIRTH",
        ),
        case(
            "a timestamp as a date",
            person("dateOfBirth", json!("1990-05-15T00:00:00Z")),
            INVALID,
        )
        .field(
            "individualCustomer.person.dateOfBirth",
            "INVALID_DATE_OF_BIRTH",
        ),
        case(
            "a date with a five-digit year",
            person("dateOfBirth", json!("+10000-01-01")),
            INVALID,
        )
        .field(
            "individualCustomer.person.dateOfBirth",
            "INVALID_DATE_OF_BIRTH",
        ),
        // Phones (nested, and the top-level copy removed by `register_with`).
        case(
            "a phone without +",
            person("phone", json!("37060012345")),
            INVALID,
        )
        .field("individualCustomer.person.phone", "INVALID_PHONE"),
        case(
            "a phone with a letter (O for 0)",
            person("phone", json!("+37060O12345")),
            INVALID,
        )
        .field("individualCustomer.person.phone", "INVALID_PHONE"),
        case(
            "a phone spelt in letters",
            person("phone", json!("+370 CALL MARCUS")),
            INVALID,
        )
        .field("individualCustomer.person.phone", "INVALID_PHONE"),
        case(
            "a 40-digit phone",
            person("phone", json!(format!("+370{}", "6".repeat(37)))),
            INVALID,
        )
        .field("individualCustomer.person.phone", "INVALID_PHONE"),
        case(
            "a well-formed phone of no country (+999)",
            person("phone", json!("+99912345678")),
            INVALID,
        )
        .field("individualCustomer.person.phone", "INVALID_PHONE"),
        case(
            "a well-formed phone no operator has (+370 0…)",
            person("phone", json!("+37000000000")),
            INVALID,
        )
        .field("individualCustomer.person.phone", "INVALID_PHONE"),
        case(
            "a NUL in the phone",
            person("phone", json!("+370600\u{0}12345")),
            INVALID,
        )
        .field("individualCustomer.person.phone", "INVALID_PHONE"),
        case(
            "an invalid PHONE contact as the only phone",
            {
                let mut body = without(ctx.body(), "/individualCustomer/person/phone");
                body.as_object_mut().unwrap().remove("phone");
                set(
                    &mut body,
                    "/individualCustomer/person/contacts/0/value",
                    json!("12"),
                );
                ctx.register(&body)
            },
            INVALID,
        ),
        // Countries.
        case(
            "an unknown country code",
            person("nationality", json!("XX")),
            INVALID,
        )
        .field("individualCustomer.person.nationality", "INVALID_COUNTRY"),
        case(
            "the ambiguous name Korea",
            person("nationality", json!("Korea")),
            INVALID,
        )
        .field("individualCustomer.person.nationality", "INVALID_COUNTRY"),
        case(
            "an unknown country in an address",
            address("country", json!("Atlantis")),
            INVALID,
        )
        .field(
            "individualCustomer.person.addresses[0].country",
            "INVALID_COUNTRY",
        ),
        case(
            "a 10 000-character country",
            person("nationality", json!(long)),
            INVALID,
        )
        .field("individualCustomer.person.nationality", "INVALID_COUNTRY"),
        // Addresses.
        case(
            "six addresses",
            person(
                "addresses",
                Value::Array(vec![
                    json!({"street": "Gedimino pr. 1", "country": "LT"});
                    6
                ]),
            ),
            INVALID,
        )
        .field("individualCustomer.person.addresses", "INVALID_ADDRESS"),
        case(
            "two primary addresses",
            person(
                "addresses",
                Value::Array(vec![
                    json!({"street": "Gedimino pr. 1", "isPrimary": true});
                    2
                ]),
            ),
            INVALID,
        )
        .field("individualCustomer.person.addresses", "INVALID_ADDRESS"),
    ];

    // Categorization (§3.3).
    let with_params = |parametrization: Value| {
        let mut body = ctx.body();
        params(&mut body, parametrization);
        ctx.register(&body)
    };
    let param = |name: &str, value: &str| json!({"name": name, "value": value});
    for (name, value) in [
        ("riskScore", "101"),
        ("riskScore", "-1"),
        ("riskScore", "55.5"),
        ("riskScore", "99999999999999999999999999"),
        ("riskScore", "0x37"),
        ("riskLevel", "EXTREME"),
        ("monthlyLimit", "20001"),
    ] {
        cases.push(case(
            format!("{name} = {value:?}"),
            with_params(json!([param(name, value)])),
            CATEGORIZATION,
        ));
    }
    cases.push(case(
        "an unknown parametrization key",
        with_params(json!([param("favouriteColour", "BLUE")])),
        CATEGORIZATION,
    ));
    cases.push(case(
        "a key-separator parametrization key",
        with_params(json!([param("riskLevel#CUSTOMER", "MEDIUM")])),
        CATEGORIZATION,
    ));
    cases.push(case(
        "two values of a single-value key",
        with_params(json!([
            param("riskLevel", "MEDIUM"),
            param("riskLevel", "HIGH")
        ])),
        CATEGORIZATION,
    ));
    cases.push(case(
        "the same value of a single-value key twice",
        with_params(json!([
            param("riskLevel", "MEDIUM"),
            param("riskLevel", "MEDIUM")
        ])),
        CATEGORIZATION,
    ));
    let mut body = ctx.body();
    set(
        &mut body,
        "/individualCustomer/categorization/categoryFeatureRelations/0/feature",
        json!({"code": "ENHANCED_AML_MONITORING"}),
    );
    cases.push(case(
        "a feature the category does not have",
        ctx.register(&body),
        CATEGORIZATION,
    ));
    let mut body = ctx.body();
    set(
        &mut body,
        "/individualCustomer/categorization/categoryFeatureRelations/0/feature",
        json!({"code": "NO_SUCH_FEATURE"}),
    );
    cases.push(case(
        "an unknown feature",
        ctx.register(&body),
        CATEGORIZATION,
    ));
    for id in [
        "PLATINUM",
        "CATEGORY#MEDIUM_RISK_INDIVIDUAL",
        "medium_risk_individual%00",
    ] {
        let mut body = without(ctx.body(), "/customerCategory");
        set(
            &mut body,
            "/individualCustomer/categorization/id",
            json!(id),
        );
        cases.push(case(
            format!("category id {id:?}"),
            ctx.register(&body),
            CATEGORY_NOT_FOUND,
        ));
    }
    cases
}

/// Registration requests with hostile credentials, tenancy, media types and headers. The
/// body is always the valid contract example: only the hostile part may refuse it.
fn registration_request_cases(ctx: &Ctx) -> Vec<Case> {
    let ok = || ctx.register(&ctx.body());
    let too_long_tenant = "t".repeat(65);
    vec![
        // Credentials.
        case(
            "no Authorization header",
            ok().unset("authorization"),
            UNAUTHORIZED,
        ),
        case(
            "Basic credentials",
            ok().auth("Basic dXNlcjpwYXNz"),
            UNAUTHORIZED,
        ),
        case("an empty bearer token", ok().auth("Bearer "), UNAUTHORIZED),
        case(
            "a token that is not a JWT",
            ok().auth("Bearer not.a.jwt"),
            UNAUTHORIZED,
        ),
        case(
            "a token signed with another key",
            ok().auth(&ctx.forged()),
            UNAUTHORIZED,
        ),
        case(
            "an unsigned (alg none) token",
            ok().auth(&ctx.unsigned()),
            UNAUTHORIZED,
        ),
        case("an expired token", ok().auth(&ctx.expired()), UNAUTHORIZED),
        case(
            "a token not valid yet",
            ok().auth(&ctx.signed(json!({"nbf": chrono::Utc::now().timestamp() + 3600}))),
            UNAUTHORIZED,
        ),
        case(
            "a token issued in the future",
            ok().auth(&ctx.signed(json!({
                "iat": chrono::Utc::now().timestamp() + 3600,
                "exp": chrono::Utc::now().timestamp() + 7200,
            }))),
            UNAUTHORIZED,
        ),
        case(
            "a token expiring this second",
            ok().auth(&ctx.signed(json!({"exp": chrono::Utc::now().timestamp()}))),
            UNAUTHORIZED,
        ),
        case(
            "a token of another issuer",
            ok().auth(&ctx.signed(json!({"iss": "https://evil.example.com"}))),
            UNAUTHORIZED,
        ),
        case(
            "a token for another audience",
            ok().auth(&ctx.signed(json!({"aud": "another-api"}))),
            UNAUTHORIZED,
        ),
        case(
            "a token without exp",
            ok().auth(&ctx.signed(json!({"exp": null}))),
            UNAUTHORIZED,
        ),
        case(
            "a token without a tenant claim",
            ok().auth(&ctx.signed(json!({"tenant_id": null}))),
            UNAUTHORIZED,
        ),
        // A validly signed token whose tenant claim is no tenant id: not a usable credential
        // (fail closed, §1.1), rather than the header rule's 400.
        case(
            "a token whose tenant claim holds a key separator",
            ok().auth(&ctx.signed(json!({"tenant_id": format!("{}#EMAIL", ctx.tenant)})))
                .tenant(&format!("{}#EMAIL", ctx.tenant)),
            &[(401, "UNAUTHORIZED"), (400, "INVALID_TENANT_ID")],
        ),
        case(
            "a token without the write scope",
            ok().auth(&ctx.bearer_of(&ctx.tenant, &["onboarding/customers.activate"])),
            SCOPE,
        ),
        case(
            "a token with a look-alike scope",
            ok().auth(&ctx.bearer_of(&ctx.tenant, &["onboarding/customers.writer"])),
            SCOPE,
        ),
        // Tenancy.
        case(
            "another tenant's token with this tenant's X-Tenant-ID",
            ok().auth(&ctx.bearer_of(&ctx.other, &ALL_SCOPES)),
            MISMATCH,
        ),
        case(
            "this tenant's token with another tenant's X-Tenant-ID",
            ok().tenant(&ctx.other),
            MISMATCH,
        ),
        case("X-Tenant-ID with '#'", ok().tenant("t#1"), BAD_TENANT),
        case("X-Tenant-ID with '/'", ok().tenant("a/b"), BAD_TENANT),
        case(
            "X-Tenant-ID of 65 characters",
            ok().tenant(&too_long_tenant),
            BAD_TENANT,
        ),
        case(
            "X-Tenant-ID holding a whole key",
            ok().tenant(&format!("TENANT#{}#CUSTOMER", ctx.tenant)),
            BAD_TENANT,
        ),
        case(
            "X-Tenant-ID in upper case",
            ok().tenant(&ctx.tenant.to_uppercase()),
            MISMATCH,
        ),
        case(
            "X-Tenant-ID with non-ASCII bytes",
            ok().set(
                "x-tenant-id",
                HeaderValue::from_bytes("tënant".as_bytes()).unwrap(),
            ),
            BAD_OR_MISSING_TENANT,
        ),
        case(
            "two X-Tenant-ID headers (own and another)",
            ok().add_str("x-tenant-id", &ctx.other),
            BAD_OR_MISMATCHED_TENANT,
        ),
        case(
            "a body tenantId with a key separator",
            ctx.register_with(
                "/individualCustomer/tenantId",
                json!(format!("{}#EMAIL", ctx.tenant)),
            ),
            BAD_TENANT,
        ),
        // Media types.
        case(
            "Content-Type text/plain",
            ok().content_type("text/plain"),
            UNSUPPORTED,
        ),
        case(
            "Content-Type application/xml",
            ok().content_type("application/xml"),
            UNSUPPORTED,
        ),
        case(
            "Content-Type form-urlencoded",
            ok().content_type("application/x-www-form-urlencoded"),
            UNSUPPORTED,
        ),
        case(
            "Content-Type multipart/form-data",
            ok().content_type("multipart/form-data; boundary=x"),
            UNSUPPORTED,
        ),
        case(
            "Content-Type application/jsonx",
            ok().content_type("application/jsonx"),
            UNSUPPORTED,
        ),
        case("no Content-Type", ok().unset("content-type"), UNSUPPORTED),
        // Idempotency-Key (§3.6: 1–255 printable ASCII characters).
        case(
            "an Idempotency-Key with a tab",
            ok().set_str("idempotency-key", "key\twith-tab"),
            INVALID,
        )
        .field("headers.Idempotency-Key", ANY),
        case(
            "an Idempotency-Key of 256 characters",
            ok().set_str("idempotency-key", &"k".repeat(256)),
            INVALID,
        )
        .field("headers.Idempotency-Key", ANY),
        case(
            "an Idempotency-Key of non-ASCII bytes",
            ok().set(
                "idempotency-key",
                HeaderValue::from_bytes("clé-ü".as_bytes()).unwrap(),
            ),
            INVALID,
        )
        .field("headers.Idempotency-Key", ANY),
        case(
            "an empty Idempotency-Key",
            ok().set_str("idempotency-key", ""),
            INVALID,
        )
        .field("headers.Idempotency-Key", ANY),
        // Client-context headers (§1.2).
        case(
            "a 300-character deviceId",
            ok().set_str("deviceid", &"d".repeat(300)),
            INVALID,
        ),
        case(
            "a User-Agent with a tab",
            ok().set_str("user-agent", "e2e\thostile"),
            INVALID,
        ),
        case(
            "no client-context headers",
            ok().unset("x-forwarded-from")
                .unset("platform")
                .unset("deviceid")
                .unset("user-agent"),
            MISSING_HEADERS,
        ),
    ]
}

/// §2 lookups with hostile tenant ids in the header and in the path.
fn hierarchy_cases(ctx: &Ctx) -> Vec<Case> {
    let own = || ctx.hierarchy(&ctx.tenant);
    let too_long = "t".repeat(65);
    vec![
        case("a path tenant with '#'", ctx.hierarchy("t%23x"), BAD_TENANT),
        case(
            "a path tenant with an encoded '/'",
            ctx.hierarchy(&format!("{}%2Fx", ctx.tenant)),
            BAD_TENANT,
        ),
        case(
            "a path tenant with a literal '/'",
            ctx.hierarchy(&format!("{}/x", ctx.tenant)),
            NO_ROUTE,
        ),
        case(
            "a path tenant of 65 characters",
            ctx.hierarchy(&too_long),
            BAD_TENANT,
        ),
        case(
            "a path tenant climbing out",
            ctx.hierarchy("..%2F..%2Fregistration"),
            BAD_TENANT,
        ),
        case("a path tenant of one NUL", ctx.hierarchy("%00"), BAD_TENANT),
        case(
            "a path tenant holding a whole key",
            ctx.hierarchy(&format!("TENANT%23{}%23CATEGORIZATION", ctx.tenant)),
            BAD_TENANT,
        ),
        case("another tenant's path", ctx.hierarchy(&ctx.other), MISMATCH),
        case(
            "the path tenant in upper case",
            ctx.hierarchy(&ctx.tenant.to_uppercase()),
            MISMATCH,
        ),
        case("X-Tenant-ID with '#'", own().tenant("#x"), BAD_TENANT),
        case("X-Tenant-ID with '/'", own().tenant("a/b"), BAD_TENANT),
        case(
            "X-Tenant-ID of 65 characters",
            own().tenant(&too_long),
            BAD_TENANT,
        ),
        case(
            "no X-Tenant-ID",
            own().unset("x-tenant-id"),
            MISSING_HEADERS,
        ),
        case(
            "another tenant's token for this tenant's path and header",
            own().auth(&ctx.bearer_of(&ctx.other, &ALL_SCOPES)),
            MISMATCH,
        ),
        case(
            "another tenant's token and header for this tenant's path",
            own()
                .auth(&ctx.bearer_of(&ctx.other, &ALL_SCOPES))
                .tenant(&ctx.other),
            MISMATCH,
        ),
        case("a forged token", own().auth(&ctx.forged()), UNAUTHORIZED),
        case("an expired token", own().auth(&ctx.expired()), UNAUTHORIZED),
        case(
            "an unsigned token",
            own().auth(&ctx.unsigned()),
            UNAUTHORIZED,
        ),
        case(
            "no Authorization header",
            own().unset("authorization"),
            UNAUTHORIZED,
        ),
        case(
            "a token without the read scope",
            own().auth(&ctx.bearer_of(&ctx.tenant, &["onboarding/customers.write"])),
            SCOPE,
        ),
    ]
}

/// §4.2 activation with hostile ids, codes, bodies and credentials. Unless the row is about
/// it, the body carries the right user and the right code.
fn activation_cases(ctx: &Ctx) -> Vec<Case> {
    let ok = || ctx.activate(&ctx.good_activation());
    let with = |field: &str, value: Value| {
        let mut body = ctx.good_activation();
        body[field] = value;
        ctx.activate(&body)
    };
    let at = |customer: &str| {
        ctx.post(
            ctx.activation_path(customer),
            ctx.good_activation().to_string(),
        )
    };
    let code = ctx.code.clone();
    vec![
        case("a 7-digit code", with("code", json!(&code[..7])), INVALID).field("code", ANY),
        case(
            "a 9-digit code",
            with("code", json!(format!("{code}0"))),
            INVALID,
        )
        .field("code", ANY),
        case(
            "a code of letters",
            with("code", json!("abcdefgh")),
            INVALID,
        )
        .field("code", ANY),
        case(
            "a code with one letter",
            with("code", json!(format!("{}a", &code[..7]))),
            INVALID,
        )
        .field("code", ANY),
        case(
            "a code in full-width digits",
            with("code", json!("１２３４５６７８")),
            INVALID,
        )
        .field("code", ANY),
        case(
            "a code in Arabic-Indic digits",
            with("code", json!("١٢٣٤٥٦٧٨")),
            INVALID,
        )
        .field("code", ANY),
        case(
            "the code as a JSON number",
            with("code", json!(12_345_678)),
            INVALID,
        )
        .field("code", ANY),
        case(
            "the code with a NUL",
            with("code", json!(format!("{code}\u{0}"))),
            INVALID,
        )
        .field("code", ANY),
        case("an empty code", with("code", json!("")), INVALID).field("code", ANY),
        case(
            "no code",
            ctx.activate(&json!({ "userId": ctx.email })),
            INVALID,
        )
        .field("code", ANY),
        case("no userId", ctx.activate(&json!({ "code": code })), INVALID).field("userId", ANY),
        case("a null userId", with("userId", Value::Null), INVALID).field("userId", ANY),
        case(
            "a userId as an operator object",
            with("userId", json!({"$ne": null})),
            INVALID,
        )
        .field("userId", ANY),
        case(
            "a 10 000-character userId",
            with("userId", json!("u".repeat(10_000))),
            INVALID,
        )
        .field("userId", ANY),
        case(
            "a userId with a NUL",
            with("userId", json!(format!("{}\u{0}", ctx.email))),
            INVALID,
        )
        .field("userId", ANY),
        case("an array as the body", ctx.activate_raw("[]"), INVALID),
        case(
            "truncated JSON",
            ctx.activate_raw(format!("{{\"userId\":\"{}\",\"code\":\"12", ctx.email)),
            MALFORMED,
        ),
        case(
            "invalid UTF-8 bytes",
            ctx.activate_raw(
                [
                    b"{\"userId\":\"\xff\xfe\",\"code\":\"".as_slice(),
                    code.as_bytes(),
                    b"\"}",
                ]
                .concat(),
            ),
            MALFORMED,
        ),
        case(
            "10 000 nested arrays",
            ctx.activate_raw(nested_arrays(10_000)),
            MALFORMED_OR_INVALID,
        ),
        case("a 1 MB body", ctx.activate_raw(json_of_len(MIB)), TOO_LARGE),
        case(
            "Content-Type text/plain",
            ok().content_type("text/plain"),
            UNSUPPORTED,
        ),
        case("no Content-Type", ok().unset("content-type"), UNSUPPORTED),
        case(
            "a customer id that is no UUID",
            at("not-a-uuid"),
            NO_CUSTOMER,
        ),
        case(
            "a customer id with a key separator",
            at(&format!("{}%23CUSTOMER", ctx.customer)),
            NO_CUSTOMER,
        ),
        case("a customer id of one NUL", at("%00"), NO_CUSTOMER),
        case(
            "an unknown UUID",
            at(&uuid::Uuid::new_v4().to_string()),
            NO_CUSTOMER,
        ),
        case(
            "a 10 000-character customer id",
            at(&"9".repeat(10_000)),
            NO_CUSTOMER,
        ),
        case(
            "another tenant's token and header",
            ok().auth(&ctx.bearer_of(&ctx.other, &ALL_SCOPES))
                .tenant(&ctx.other),
            NO_CUSTOMER,
        ),
        case(
            "another tenant's token with this tenant's header",
            ok().auth(&ctx.bearer_of(&ctx.other, &ALL_SCOPES)),
            MISMATCH,
        ),
        case("a forged token", ok().auth(&ctx.forged()), UNAUTHORIZED),
        case("an expired token", ok().auth(&ctx.expired()), UNAUTHORIZED),
        case(
            "no Authorization header",
            ok().unset("authorization"),
            UNAUTHORIZED,
        ),
        case(
            "a token without the activate scope",
            ok().auth(&ctx.bearer_of(&ctx.tenant, &["onboarding/customers.write"])),
            SCOPE,
        ),
        case("X-Tenant-ID with '#'", ok().tenant("t#1"), BAD_TENANT),
        case(
            "X-Tenant-ID of 65 characters",
            ok().tenant(&"t".repeat(65)),
            BAD_TENANT,
        ),
        case(
            "no client-context headers",
            ok().unset("x-forwarded-from")
                .unset("platform")
                .unset("deviceid"),
            MISSING_HEADERS,
        ),
    ]
}

/// §4.3 resend with hostile ids, bodies and credentials. The stack's clock has moved past the
/// 60 s resend window, so only the hostile part of a row may refuse it.
fn resend_cases(ctx: &Ctx) -> Vec<Case> {
    let ok = || ctx.resend(&ctx.good_resend());
    let at = |customer: &str| ctx.post(ctx.resend_path(customer), ctx.good_resend().to_string());
    vec![
        case("no userId", ctx.resend(&json!({})), INVALID).field("userId", ANY),
        case(
            "a userId as a number",
            ctx.resend(&json!({"userId": 42})),
            INVALID,
        )
        .field("userId", ANY),
        case(
            "a 10 000-character userId",
            ctx.resend(&json!({"userId": "u".repeat(10_000)})),
            INVALID,
        )
        .field("userId", ANY),
        case(
            "a userId with a NUL",
            ctx.resend(&json!({"userId": format!("{}\u{0}", ctx.email)})),
            INVALID,
        )
        .field("userId", ANY),
        case(
            "a string as the body",
            ctx.resend_raw("\"resend\""),
            INVALID,
        ),
        case("truncated JSON", ctx.resend_raw("{\"userId\":"), MALFORMED),
        case(
            "invalid UTF-8 bytes",
            ctx.resend_raw(b"{\"userId\":\"\xc3\x28\"}".to_vec()),
            MALFORMED,
        ),
        case(
            "10 000 nested arrays",
            ctx.resend_raw(nested_arrays(10_000)),
            MALFORMED_OR_INVALID,
        ),
        case("a 1 MB body", ctx.resend_raw(json_of_len(MIB)), TOO_LARGE),
        case(
            "Content-Type text/plain",
            ok().content_type("text/plain"),
            UNSUPPORTED,
        ),
        case(
            "a customer id that is no UUID",
            at("not-a-uuid"),
            NO_CUSTOMER,
        ),
        case(
            "an unknown UUID",
            at(&uuid::Uuid::new_v4().to_string()),
            NO_CUSTOMER,
        ),
        case(
            "another tenant's token and header",
            ok().auth(&ctx.bearer_of(&ctx.other, &ALL_SCOPES))
                .tenant(&ctx.other),
            NO_CUSTOMER,
        ),
        case(
            "another tenant's token with this tenant's header",
            ok().auth(&ctx.bearer_of(&ctx.other, &ALL_SCOPES)),
            MISMATCH,
        ),
        case("a forged token", ok().auth(&ctx.forged()), UNAUTHORIZED),
        case("an expired token", ok().auth(&ctx.expired()), UNAUTHORIZED),
        case(
            "no Authorization header",
            ok().unset("authorization"),
            UNAUTHORIZED,
        ),
        case(
            "a token without the activate scope",
            ok().auth(&ctx.bearer_of(&ctx.tenant, &["onboarding/customers.write"])),
            SCOPE,
        ),
        case("X-Tenant-ID with '/'", ok().tenant("a/b"), BAD_TENANT),
    ]
}

/// Wrong methods on each route (405) and paths that are no route (404), with valid bodies
/// and credentials.
fn method_and_route_cases(ctx: &Ctx) -> Vec<Case> {
    let routes = [
        ("hierarchy", hierarchy_path(&ctx.tenant), Vec::new()),
        (
            "registration",
            REGISTRATION.to_owned(),
            ctx.body().to_string().into_bytes(),
        ),
        (
            "activation",
            ctx.activation_path(&ctx.customer),
            ctx.good_activation().to_string().into_bytes(),
        ),
        (
            "resend",
            ctx.resend_path(&ctx.customer),
            ctx.good_resend().to_string().into_bytes(),
        ),
    ];
    let mut cases = Vec::new();
    for (route, path, body) in &routes {
        for method in [Method::PUT, Method::DELETE, Method::PATCH] {
            cases.push(case(
                format!("{method} on {route}"),
                ctx.base(method.clone(), path.clone(), body.clone()),
                NO_METHOD,
            ));
        }
    }
    cases.push(case(
        "GET on activation",
        ctx.get(ctx.activation_path(&ctx.customer)),
        NO_METHOD,
    ));
    cases.push(case(
        "POST on the hierarchy",
        ctx.post(hierarchy_path(&ctx.tenant), "{}"),
        NO_METHOD,
    ));
    cases.push(case(
        "a made-up method on registration",
        ctx.register(&ctx.body())
            .method(Method::from_bytes(b"BREW").unwrap()),
        NO_METHOD,
    ));
    let id = &ctx.customer;
    for (name, path) in [
        ("the root", "/".to_owned()),
        (
            "registration with an extra segment",
            format!("{REGISTRATION}/extra"),
        ),
        (
            "another API version",
            "/api/v2.0/customer/individual/registration".to_owned(),
        ),
        ("the path in upper case", REGISTRATION.to_uppercase()),
        (
            "an empty customer id",
            "/api/v2.1/customer/individual//activation".to_owned(),
        ),
        (
            "resend with an extra segment",
            format!("/api/v2.1/customer/individual/{id}/activation/code/extra"),
        ),
        (
            "the customer itself (the Location of a registration)",
            format!("/api/v2.1/customer/individual/{id}"),
        ),
        (
            "an encoded slash inside the route",
            format!("/api/v2.1/customer/individual/{id}/activation%2Fcode"),
        ),
    ] {
        cases.push(case(
            format!("POST to {name}"),
            ctx.post(path, ctx.good_activation().to_string()),
            NO_ROUTE,
        ));
    }
    cases
}

// ---------------------------------------------------------------------------------------------
// The runner.

struct Answer {
    status: u16,
    content_type: Option<String>,
    request_id: bool,
    text: String,
    body: Value,
}

async fn send(stack: &Stack, req: &Req) -> Result<Answer, reqwest::Error> {
    let mut builder = stack
        .http
        .request(req.method.clone(), format!("{}{}", stack.base, req.path));
    for (name, value) in &req.headers {
        builder = builder.header(*name, value.clone());
    }
    if !req.body.is_empty() {
        builder = builder.body(req.body.clone());
    }
    let response = builder.timeout(Duration::from_secs(60)).send().await?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let request_id = response.headers().contains_key("x-request-id");
    let text = response.text().await?;
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Answer {
        status,
        content_type,
        request_id,
        text,
        body,
    })
}

/// Every item of the tenants, in a stable order.
async fn snapshot(stack: &Stack, tenants: &[&str]) -> Vec<Value> {
    let mut items = Vec::new();
    for tenant in tenants {
        items.extend(stack.items_of(tenant).await);
    }
    items.sort_by_key(|i| format!("{}|{}", i["PK"], i["SK"]));
    items
}

fn describe_change(before: &[Value], after: &[Value]) -> String {
    let key = |i: &Value| {
        format!(
            "{}/{}",
            i["PK"].as_str().unwrap_or("?"),
            i["SK"].as_str().unwrap_or("?")
        )
    };
    let mut changes = Vec::new();
    for item in after {
        match before.iter().find(|b| key(b) == key(item)) {
            None => changes.push(format!("new {}", key(item))),
            Some(old) if old != item => {
                let fields: Vec<String> = item
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(k, v)| old.get(k.as_str()) != Some(v))
                    .map(|(k, _)| k.clone())
                    .collect();
                changes.push(format!("changed {} ({})", key(item), fields.join(", ")));
            }
            Some(_) => {}
        }
    }
    for item in before {
        if !after.iter().any(|a| key(a) == key(item)) {
            changes.push(format!("deleted {}", key(item)));
        }
    }
    changes.join("; ")
}

fn short(text: &str) -> String {
    let cut: String = text.chars().take(300).collect();
    if cut.len() < text.len() {
        format!("{cut}…")
    } else {
        cut
    }
}

fn judge(case: &Case, answer: &Answer, problems: &mut Vec<String>) {
    let code = answer.body["data"]["error"].as_str().unwrap_or("<none>");
    let wanted: Vec<String> = case
        .expect
        .iter()
        .map(|(s, c)| format!("{s} {c}"))
        .collect();
    if !case
        .expect
        .iter()
        .any(|(s, c)| *s == answer.status && *c == code)
    {
        problems.push(format!(
            "expected {}, got {} {code}: {}",
            wanted.join(" or "),
            answer.status,
            short(&answer.text)
        ));
    }
    if answer.status >= 500 {
        problems.push("a 5xx".into());
    }
    if answer.body["code"] != answer.status {
        problems.push(format!(
            "envelope code {} differs from the status",
            answer.body["code"]
        ));
    }
    if !answer
        .content_type
        .as_deref()
        .is_some_and(|c| c.starts_with("application/json"))
    {
        problems.push(format!("Content-Type {:?}", answer.content_type));
    }
    if !answer.request_id {
        problems.push("no X-Request-Id".into());
    }
    if let Some((field, field_code)) = case.field {
        let found = answer.body["data"]["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["field"] == field && (field_code == ANY || e["code"] == field_code));
        if !found {
            problems.push(format!(
                "data.errors lacks ({field}, {field_code}): {}",
                answer.body["data"]["errors"]
            ));
        }
    }
    if answer.text.contains("SecurePass123!") {
        problems.push("the password is echoed".into());
    }
}

/// Runs every row; fails once, listing every failing row.
async fn run(stack: &Stack, tenants: &[&str], table: &str, cases: Vec<Case>) {
    let total = cases.len();
    let mut failures = Vec::new();
    let mut items = snapshot(stack, tenants).await;
    let mut mail = stack.mail().len();
    for case in &cases {
        let answer = send(stack, &case.req).await;
        let mut problems = Vec::new();
        match &answer {
            Ok(answer) => judge(case, answer, &mut problems),
            Err(error) => problems.push(format!("no answer: {error}")),
        }
        let after = snapshot(stack, tenants).await;
        if after != items {
            problems.push(format!(
                "the table changed: {}",
                describe_change(&items, &after)
            ));
            items = after;
        }
        let sent = stack.mail().len();
        if sent != mail {
            problems.push(format!("{} e-mail(s) sent", sent - mail));
            mail = sent;
        }
        if !problems.is_empty() {
            failures.push(format!("  [{}] {}", case.name, problems.join("; ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} {table} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A stack with two tenants (the second one is the "other tenant" of the rows).
async fn two_tenants() -> (Stack, String, String) {
    let stack = Stack::start().await;
    let tenant = stack.tenant_with_demo_hierarchy().await;
    let other = stack.tenant_with_demo_hierarchy().await;
    (stack, tenant, other)
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[tokio::test]
async fn hostile_registration_bodies_are_refused_without_writing() {
    let (stack, tenant, other) = two_tenants().await;
    let ctx = Ctx::new(&stack, &tenant, &other, "", "");
    run(
        &stack,
        &[&tenant, &other],
        "registration-body",
        registration_body_cases(&ctx),
    )
    .await;
}

#[tokio::test]
async fn hostile_registration_fields_are_refused_without_writing() {
    let (stack, tenant, other) = two_tenants().await;
    let ctx = Ctx::new(&stack, &tenant, &other, "", "");
    run(
        &stack,
        &[&tenant, &other],
        "registration-field",
        registration_field_cases(&ctx),
    )
    .await;
}

#[tokio::test]
async fn hostile_registration_requests_are_refused_without_writing() {
    let (stack, tenant, other) = two_tenants().await;
    let ctx = Ctx::new(&stack, &tenant, &other, "", "");
    run(
        &stack,
        &[&tenant, &other],
        "registration-request",
        registration_request_cases(&ctx),
    )
    .await;
}

#[tokio::test]
async fn hostile_hierarchy_lookups_are_refused() {
    let (stack, tenant, other) = two_tenants().await;
    let ctx = Ctx::new(&stack, &tenant, &other, "", "");
    run(
        &stack,
        &[&tenant, &other],
        "hierarchy",
        hierarchy_cases(&ctx),
    )
    .await;
}

#[tokio::test]
async fn hostile_activations_are_refused_and_leave_the_customer_unchanged() {
    let (stack, tenant, other) = two_tenants().await;
    let email = "hostile-activation@example.com";
    let customer = stack.registered(&tenant, email).await;
    let ctx = Ctx::new(&stack, &tenant, &other, &customer, email);
    run(
        &stack,
        &[&tenant, &other],
        "activation",
        activation_cases(&ctx),
    )
    .await;
    // The right code still works: no row burned an attempt or replaced the code.
    let reply = stack.activate(&tenant, &customer, email, &ctx.code).await;
    assert_eq!(reply.status, 200, "{}", reply);
}

#[tokio::test]
async fn hostile_resends_are_refused_and_leave_the_customer_unchanged() {
    let (stack, tenant, other) = two_tenants().await;
    let email = "hostile-resend@example.com";
    let customer = stack.registered(&tenant, email).await;
    stack.advance(61);
    let ctx = Ctx::new(&stack, &tenant, &other, &customer, email);
    run(&stack, &[&tenant, &other], "resend", resend_cases(&ctx)).await;
    // A proper resend is still possible: the rows were refused for their hostile part only.
    let reply = stack.resend(&tenant, &customer, email).await;
    assert_eq!(reply.status, 202, "{}", reply);
}

#[tokio::test]
async fn wrong_methods_and_unknown_routes_are_refused() {
    let (stack, tenant, other) = two_tenants().await;
    let email = "hostile-routes@example.com";
    let customer = stack.registered(&tenant, email).await;
    let ctx = Ctx::new(&stack, &tenant, &other, &customer, email);
    run(
        &stack,
        &[&tenant, &other],
        "methods-and-routes",
        method_and_route_cases(&ctx),
    )
    .await;
}
