# The two commands a fresh machine needs: `make run` and `make test`. Both install their own
# tools (a Python venv with pinned moto and cfn-lint) on first use.

SHELL := /bin/bash
VENV := .venv
PY_TOOLS := $(VENV)/.installed
API_PORT ?= 3000
DYNAMODB_PORT ?= 8000
TENANT ?= 97e7ff29-15f3-49ef-9681-3bbfcce4f6cd
SCOPES ?=

export API_PORT DYNAMODB_PORT

.PHONY: run test token fmt fmt-check lint validate build-local bench clean

$(PY_TOOLS): tools/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/requirements.txt
	touch $@

build-local:
	cargo build --locked --bin local-gateway --bin onboarding-admin --bin dev-token

## Local stack: moto + table + demo tenants + gateway on 127.0.0.1:$(API_PORT).
run: $(PY_TOOLS) build-local
	scripts/run-local.sh

## A bearer token for the local gateway: make token TENANT=<id> [SCOPES="a b"]
token:
	@cargo run --quiet --locked --bin dev-token -- $(TENANT) $(SCOPES)

## Everything CI checks.
test: $(PY_TOOLS) fmt-check lint validate
	scripts/test.sh

fmt-check:
	cargo fmt --all -- --check

fmt:
	cargo fmt --all

lint:
	cargo clippy --locked --workspace --all-targets -- -D warnings

validate: $(PY_TOOLS)
	$(VENV)/bin/cfn-lint template.yaml

## Speed and size targets (release builds; not part of make test): one table, one run.
bench: $(PY_TOOLS)
	scripts/bench.sh

clean:
	rm -rf target $(VENV) .local
