#!/usr/bin/env bash
# Starts the DynamoDB-compatible server (moto, from the project's venv) on 127.0.0.1:$1 in the
# background, waits until it answers, and prints its PID. Its log goes to $2.
set -euo pipefail
port="$1"
log="${2:-/dev/null}"
root="$(cd "$(dirname "$0")/.." && pwd)"
answers() { curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$port/moto-api/" 2>/dev/null; }
# Something already listening (a moto left running by an interrupted run would be taken for
# the new one, with the old one's data, and outlive this run): refuse rather than share it.
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "port $port is already in use; stop what runs there or choose another port" >&2
  echo "(DYNAMODB_PORT=... for make run)" >&2
  exit 1
fi
"$root/.venv/bin/python" "$root/scripts/moto_serial.py" 127.0.0.1 "$port" >"$log" 2>&1 &
pid=$!
# Until the caller has the PID (and its own trap), an interrupt here must not leave moto behind.
trap 'kill "$pid" 2>/dev/null || true; exit 130' INT TERM
for _ in $(seq 1 100); do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "moto exited early; see $log" >&2
    exit 1
  fi
  if answers && kill -0 "$pid" 2>/dev/null; then
    echo "$pid"
    exit 0
  fi
  sleep 0.2
done
echo "moto did not answer on port $port within 20 s; see $log" >&2
kill "$pid" 2>/dev/null || true
exit 1
