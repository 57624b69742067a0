#!/usr/bin/env bash
# `make test`'s test step: a private moto on a free port for the run, every workspace test
# against it, moto stopped afterwards whatever happens.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
mkdir -p .local
port="$(python3 scripts/free-port.py)"
moto_pid="$(scripts/moto.sh "$port" .local/moto-test.log)"
trap 'kill "$moto_pid" 2>/dev/null || true' EXIT INT TERM
export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:${port}"
export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
export AWS_EC2_METADATA_DISABLED=true
cargo test --workspace --locked "$@"
# Contract fuzzing against the local stack (same moto), unless only some tests were asked for.
if [ "$#" -eq 0 ]; then
  scripts/fuzz.sh
fi
