#!/usr/bin/env bash
# Contract fuzzing: schemathesis (pinned in .venv) against the local stack, with a fixed seed
# and a bounded number of examples. Expects AWS_ENDPOINT_URL_DYNAMODB to point at a running
# moto (scripts/test.sh provides one) and the workspace binaries built.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
: "${FUZZ_EXAMPLES:=50}" "${FUZZ_SEED:=20261125}"
tenant=97e7ff29-15f3-49ef-9681-3bbfcce4f6cd
table="fuzz-$(date +%s)-$$"
port="$(python3 scripts/free-port.py)"
export TABLE_NAME="$table" API_PORT="$port" LOCAL_MAILBOX=.local/fuzz-mailbox.jsonl
export ACTIVATION_CODE_SECRET=fuzzing-activation-secret-000000000000 ACTIVATION_DELIVERY=mailbox
export RUST_LOG=warn

cargo build --locked --quiet -p local-gateway -p onboarding-admin
target/debug/onboarding-admin create-table "$table" template.yaml >/dev/null
target/debug/onboarding-admin put-hierarchy "$table" "${DEMO_HIERARCHY:-../shared/spec/demo-hierarchy.json}" >/dev/null
target/debug/local-gateway 2>.local/fuzz-gateway.log &
gateway=$!
trap 'kill "$gateway" 2>/dev/null || true' EXIT
ready=
for _ in $(seq 1 50); do
  if ! kill -0 "$gateway" 2>/dev/null; then
    echo "the local gateway exited; its log:" >&2
    tail -n 20 .local/fuzz-gateway.log >&2
    exit 1
  fi
  curl -fsS -o /dev/null "http://127.0.0.1:$port/openapi.yaml" 2>/dev/null && ready=1 && break
  sleep 0.2
done
if [ -z "$ready" ]; then
  echo "the local gateway did not answer on port $port within 10 s; its log:" >&2
  tail -n 20 .local/fuzz-gateway.log >&2
  exit 1
fi
token="$(target/debug/dev-token "$tenant")"

# A registered customer, named to schemathesis in a config file: the activation operations
# then reach past the customer lookup (404 for a made-up id) into code checks, attempt
# counting and resend limits. Its own e-mail, so the contract example still registers.
body="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["body"].replace("marcus.jensen@example.com", "fuzz-customer@example.com"))' events/registration-contract-example.json)"
customer="$(curl -fsS "http://127.0.0.1:$port/api/v2.1/customer/individual/registration" \
  -H "Authorization: Bearer $token" -H "X-Tenant-ID: $tenant" -H "Content-Type: application/json" \
  -H "X-Forwarded-From: fuzz" -H "platform: web" -H "deviceId: fuzz" -d "$body" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["data"]["id"])')"
config=.local/fuzz-schemathesis.toml
printf '[parameters]\n"path.customerId" = "%s"\n' "$customer" >"$config"

.venv/bin/schemathesis --config-file "$config" run "http://127.0.0.1:$port/openapi.yaml" \
  --url "http://127.0.0.1:$port" \
  --header "Authorization: Bearer $token" --header "X-Tenant-ID: $tenant" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --max-examples "$FUZZ_EXAMPLES" --seed "$FUZZ_SEED" --workers 1 \
  --suppress-health-check all \
  --report junit --report-junit-path .local/fuzz-junit.xml \
  --no-color
