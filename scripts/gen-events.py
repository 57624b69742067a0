"""Writes events/*.json: API Gateway HTTP API (payload v2.0) events for every route and the
main error cases, usable with `sam local invoke -e` and by the handler tests.
Run `python3 scripts/gen-events.py` after changing a case; the files are committed."""
import copy
import json
import pathlib

TENANT = "97e7ff29-15f3-49ef-9681-3bbfcce4f6cd"
BASE = "/api/v2.1/customer/individual"
CUSTOMER = "3f2b8c1e-9d4a-4e5b-8c7d-1a2b3c4d5e6f"
ALL_SCOPES = "onboarding/categorization.read onboarding/customers.write onboarding/customers.activate"
CLIENT_HEADERS = {
    "x-forwarded-from": "web-app",
    "platform": "web",
    "deviceid": "device-1234",
    "user-agent": "Mozilla/5.0 (X11; Linux x86_64)",
    "x-forwarded-for": "203.0.113.10",
}

CONTRACT_BODY = {
    "firstName": "Marcus", "lastName": "Jensen",
    "email": "marcus.jensen@example.com", "phone": "+37060012345",
    "password": "SecurePass123!", "matchingPassword": "SecurePass123!",
    "roleIds": ["ACCOUNT_OWNER", "USER"],
    "dateOfBirth": "1990-05-15", "gender": "MALE",
    "nationality": "LT", "placeOfBirth": "Vilnius", "pincode": "12345",
    "customerCategory": {"id": "MEDIUM_RISK_INDIVIDUAL", "name": "Medium Risk Individual"},
    "individualCustomer": {
        "customerName": "Marcus Jensen",
        "tenantId": TENANT,
        "person": {
            "firstName": "Marcus", "lastName": "Jensen", "email": "marcus.jensen@example.com",
            "phone": "+37060012345", "dateOfBirth": "1990-05-15", "gender": "MALE",
            "nationality": "Lithuania", "placeOfBirth": "Vilnius", "pincode": "12345",
            "addresses": [{"type": "HOME", "street": "Gedimino pr. 1", "city": "Vilnius",
                           "postalCode": "01103", "country": "LT", "isPrimary": True}],
            "contacts": [{"type": "PHONE", "value": "+37060012345", "isPrimary": True}]},
        "user": {"username": "marcus.jensen@example.com", "roles": ["ACCOUNT_OWNER", "USER"]},
        "categorization": {
            "id": "MEDIUM_RISK_INDIVIDUAL",
            "categoryFeatureRelations": [{
                "feature": {"id": "7c1d9e22-3b4a-4f5e-8a6b-9c0d1e2f3a4b", "code": "MEDIUM_RISK_PROFILE"},
                "enabled": True,
                "parametrization": [{"name": "riskLevel", "value": "MEDIUM"},
                                    {"name": "riskScore", "value": "55"}]}]}},
}


def event(method, route_path, raw_path, *, headers=None, body=None, claims=None, path_params=None):
    route_key = f"{method} {route_path}"
    hdrs = {"x-tenant-id": TENANT, "content-type": "application/json", **(headers or {})}
    hdrs = {k: v for k, v in hdrs.items() if v is not None}
    ctx = {
        "accountId": "123456789012", "apiId": "abc123", "domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
        "domainPrefix": "abc123",
        "http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.10",
                 "userAgent": hdrs.get("user-agent", "")},
        "requestId": "req-" + route_key.replace(" ", "-").replace("/", "_")[:40],
        "routeKey": route_key, "stage": "$default", "time": "25/Nov/2026:10:00:00 +0000",
        "timeEpoch": 1795687200000,
    }
    if claims is not False:
        ctx["authorizer"] = {"jwt": {"claims": claims or {
            "iss": "https://issuer.example.com", "aud": "onboarding-api", "sub": "client-1",
            "tenant_id": TENANT, "scope": ALL_SCOPES, "exp": "1795690800"}, "scopes": None}}
    ev = {"version": "2.0", "routeKey": route_key, "rawPath": raw_path, "rawQueryString": "",
          "headers": hdrs, "requestContext": ctx, "isBase64Encoded": False}
    if path_params:
        ev["pathParameters"] = path_params
    if body is not None:
        ev["body"] = body if isinstance(body, str) else json.dumps(body)
    return ev


def main():
    out = pathlib.Path(__file__).resolve().parent.parent / "events"
    out.mkdir(exist_ok=True)
    hier_route = f"{BASE}/categorization/hierarchy/{{tenantId}}"
    reg = f"{BASE}/registration"
    act_route = f"{BASE}/{{customerId}}/activation"
    resend_route = f"{BASE}/{{customerId}}/activation/code"
    flat = {k: v for k, v in CONTRACT_BODY.items() if k != "individualCustomer"}
    mismatch = copy.deepcopy(CONTRACT_BODY)
    mismatch["matchingPassword"] = "DifferentPass123!"
    events = {
        "categorization-get-hierarchy": event("GET", hier_route, f"{BASE}/categorization/hierarchy/{TENANT}",
                                              path_params={"tenantId": TENANT}),
        "categorization-other-tenant": event("GET", hier_route, f"{BASE}/categorization/hierarchy/tenant_cloudvault",
                                             path_params={"tenantId": "tenant_cloudvault"}),
        "registration-contract-example": event("POST", reg, reg, headers=CLIENT_HEADERS, body=CONTRACT_BODY),
        "registration-flat-object": event("POST", reg, reg, headers=CLIENT_HEADERS, body=flat),
        "registration-password-mismatch": event("POST", reg, reg, headers=CLIENT_HEADERS, body=mismatch),
        "registration-malformed-json": event("POST", reg, reg, headers=CLIENT_HEADERS, body='{"individualCustomer": '),
        "registration-missing-headers": event("POST", reg, reg, headers={"user-agent": "curl/8"}, body=CONTRACT_BODY),
        "registration-tenant-mismatch": event("POST", reg, reg, headers={**CLIENT_HEADERS, "x-tenant-id": "tenant_cloudvault"},
                                              body=CONTRACT_BODY),
        "registration-insufficient-scope": event("POST", reg, reg, headers=CLIENT_HEADERS, body=CONTRACT_BODY, claims={
            "iss": "https://issuer.example.com", "tenant_id": TENANT, "scope": "onboarding/categorization.read"}),
        "registration-no-claims": event("POST", reg, reg, headers=CLIENT_HEADERS, body=CONTRACT_BODY, claims=False),
        "activation-activate": event("POST", act_route, f"{BASE}/{CUSTOMER}/activation", headers=CLIENT_HEADERS,
                                     body={"userId": "marcus.jensen@example.com", "code": "12345678"},
                                     path_params={"customerId": CUSTOMER}),
        "activation-resend-code": event("POST", resend_route, f"{BASE}/{CUSTOMER}/activation/code", headers=CLIENT_HEADERS,
                                        body={"userId": "marcus.jensen@example.com"}, path_params={"customerId": CUSTOMER}),
        "default-unknown-route": event("GET", "$default", f"{BASE}/no/such/route"),
    }
    # `$default` has no "METHOD path" route key.
    events["default-unknown-route"]["routeKey"] = "$default"
    events["default-unknown-route"]["requestContext"]["routeKey"] = "$default"
    for name, ev in events.items():
        (out / f"{name}.json").write_text(json.dumps(ev, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {len(events)} events to {out}")


if __name__ == "__main__":
    main()
