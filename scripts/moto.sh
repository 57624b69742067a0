#!/usr/bin/env bash
# Starts the DynamoDB-compatible server (moto, from the project's venv) on 127.0.0.1:$1 in the
# background, waits until it answers, and prints its PID. Its log goes to $2.
set -euo pipefail
port="$1"
log="${2:-/dev/null}"
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/.venv/bin/python" "$root/scripts/moto_serial.py" 127.0.0.1 "$port" >"$log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  if curl -fsS -o /dev/null "http://127.0.0.1:$port/moto-api/" 2>/dev/null; then
    echo "$pid"
    exit 0
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "moto exited early; see $log" >&2
    exit 1
  fi
  sleep 0.2
done
echo "moto did not answer on port $port within 20 s; see $log" >&2
kill "$pid" 2>/dev/null || true
exit 1
