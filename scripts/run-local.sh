#!/usr/bin/env bash
# `make run`: moto on $DYNAMODB_PORT, the table created from template.yaml, the demo tenants
# loaded through the admin command, and the local gateway on $API_PORT in the foreground.
# Ctrl-C stops everything.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
: "${API_PORT:=3000}" "${DYNAMODB_PORT:=8000}" "${TABLE_NAME:=onboarding-local}"
: "${DEMO_HIERARCHY:=../shared/spec/demo-hierarchy.json}" "${LOCAL_MAILBOX:=.local/mailbox.jsonl}"
: "${ACTIVATION_CODE_SECRET:=local-development-activation-secret-not-for-aws}"
export API_PORT TABLE_NAME LOCAL_MAILBOX ACTIVATION_CODE_SECRET
export ACTIVATION_DELIVERY=mailbox
export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:${DYNAMODB_PORT}"
export AWS_REGION="${AWS_REGION:-us-east-1}" AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-local}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-local}" AWS_EC2_METADATA_DISABLED=true
mkdir -p .local "$(dirname "$LOCAL_MAILBOX")"

moto_pid="$(scripts/moto.sh "$DYNAMODB_PORT" .local/moto.log)"
trap 'kill "$moto_pid" 2>/dev/null || true' EXIT INT TERM
echo "moto (DynamoDB) on 127.0.0.1:${DYNAMODB_PORT}, pid ${moto_pid}"

target/debug/onboarding-admin create-table "$TABLE_NAME" template.yaml
target/debug/onboarding-admin put-hierarchy "$TABLE_NAME" "$DEMO_HIERARCHY"
echo "token:   make token TENANT=97e7ff29-15f3-49ef-9681-3bbfcce4f6cd"
echo "mailbox: ${LOCAL_MAILBOX}"
target/debug/local-gateway
