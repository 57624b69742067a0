#!/usr/bin/env bash
# `make bench`: release builds, a private moto on a free port with the table and the demo
# tenants, the criterion bench of the registration CPU path, then tools/bench (Runtime API
# emulator, counting DynamoDB proxy, Argon2, sizes) printing one table with criterion's median.
# A missed target is a MISS row, not a failure: the exit status is 0 unless the harness broke.
# BENCH_ROUNDS (default 15) sets the number of cold starts per function, BENCH_INIT_SAMPLES
# (default 60) the number of fresh processes per binary the init rows are the median of.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
: "${BENCH_ROUNDS:=15}" "${BENCH_INIT_SAMPLES:=60}" "${DEMO_HIERARCHY:=../shared/spec/demo-hierarchy.json}"
target_dir="${CARGO_TARGET_DIR:-target}"
work=.local/bench
bench_id=registration_cpu
mkdir -p "$work"

echo "bench: release builds (the first one takes minutes: LTO fat, one codegen unit)" >&2
cargo build --release --locked -p categorization -p registration -p activation >&2
# The tools apart: built together, their features (the admin's SSO and credential_process, the
# harness's tokio process and axum) would be unified into the functions measured here, which
# `sam build` builds without them (the workspace's default members leave the tools out).
cargo build --release --locked -p onboarding-bench >&2
cargo build --release --locked -p onboarding-admin >&2
cargo bench --locked -p registration --bench "$bench_id" --no-run >&2

# With 2+ CPUs allowed, the functions under test get the first (onboarding-bench pins them)
# and moto, the emulator and the proxy the others: DynamoDB never shares the function's CPU.
read -r -a allowed < <(python3 -c 'import os; print(*sorted(os.sched_getaffinity(0)))')
harness=() pinning=() cpus="not pinned (one CPU allowed, or no taskset)"
if [ "${#allowed[@]}" -ge 2 ] && command -v taskset >/dev/null; then
  rest="$(IFS=,; echo "${allowed[*]:1}")"
  harness=(taskset -c "$rest")
  pinning=(--function-cpu "${allowed[0]}")
  cpus="functions on CPU ${allowed[0]}; moto, emulator and proxy on CPUs $rest"
fi

port="$(python3 scripts/free-port.py)"
moto_pid="$("${harness[@]}" scripts/moto.sh "$port" "$work/moto.log")"
trap 'kill "$moto_pid" 2>/dev/null || true' EXIT INT TERM
export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:${port}"
export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench
export AWS_EC2_METADATA_DISABLED=true
table="bench-$(date +%s)-$$"
"$target_dir/release/onboarding-admin" create-table "$table" template.yaml >&2
"$target_dir/release/onboarding-admin" put-hierarchy "$table" "$DEMO_HIERARCHY" >&2

echo "bench: criterion ($bench_id)" >&2
rm -rf "$target_dir/criterion/$bench_id"
cargo bench --locked -p registration --bench "$bench_id" -- --noplot >&2
estimates="$target_dir/criterion/$bench_id/new/estimates.json"
cpu_median_ns="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["median"]["point_estimate"])' "$estimates")"

# The binaries are measured from fresh copies, as a deployment unpacks them. Straight from the
# linker's output they start ~0.3 ms slower (the larger the binary, the more): the page cache
# holds a file the linker has just written in small pieces, and mapping it faults more often
# than mapping a file read back from disk or written whole. The same bytes from target/release
# read 1.46-1.57x hello and, after `echo 3 > /proc/sys/vm/drop_caches` or from a copy,
# 1.27-1.45x (four interleaved runs on 2026-11-26). Baseline and functions are copied alike.
bin_dir="$work/bin"
rm -rf "$bin_dir" && mkdir -p "$bin_dir"
for bin in hello hello-current-thread categorization registration activation tls-first-use; do
  cp "$target_dir/release/$bin" "$bin_dir/$bin"
done

table_out="$(mktemp)"
"${harness[@]}" "$target_dir/release/onboarding-bench" "${pinning[@]}" \
  --dynamodb "127.0.0.1:${port}" --table "$table" --bin-dir "$bin_dir" \
  --events events --work-dir "$work" --rounds "$BENCH_ROUNDS" \
  --init-samples "$BENCH_INIT_SAMPLES" --cpu-median-ns "$cpu_median_ns" >"$table_out"

cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo
echo "machine: $(nproc) cores, ${cpu:-unknown CPU}, $(uname -sr), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "cpus:    $cpus"
echo "command: make bench (scripts/bench.sh: cargo build --release; cargo bench -p registration --bench $bench_id; target/release/onboarding-bench --rounds $BENCH_ROUNDS --init-samples $BENCH_INIT_SAMPLES on copies of the binaries in $bin_dir)"
cat "$table_out"
rm -f "$table_out"
