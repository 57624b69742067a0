# The two commands a fresh machine needs: `make run` and `make test`. Both install their own
# tools (a Python venv with pinned moto and cfn-lint) on first use.

SHELL := /bin/bash
VENV := .venv
PY_TOOLS := $(VENV)/.installed
SAM_VENV := .venv-sam
SAM_TOOLS := $(SAM_VENV)/.installed
SAM := PATH="$(CURDIR)/$(SAM_VENV)/bin:$$PATH" SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam
ENV ?= default
API_PORT ?= 3000
DYNAMODB_PORT ?= 8000
TENANT ?= 97e7ff29-15f3-49ef-9681-3bbfcce4f6cd
SCOPES ?=

export API_PORT DYNAMODB_PORT

.PHONY: run test token fmt fmt-check lint deny phone-metadata-check phone-metadata validate build deploy build-local bench clean

# Every dependency's version is fixed by the constraints files, not only the tools'.
$(PY_TOOLS): tools/requirements.txt tools/constraints.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/requirements.txt -c tools/constraints.txt
	touch $@

$(SAM_TOOLS): tools/requirements-sam.txt tools/constraints-sam.txt
	python3 -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/requirements-sam.txt -c tools/constraints-sam.txt
	touch $@

# cargo-deny, pinned, built from crates.io into .local on first use (~2.5 min).
CARGO_DENY_VERSION := 0.20.2
CARGO_DENY := .local/tools/cargo-deny-$(CARGO_DENY_VERSION)/bin/cargo-deny

$(CARGO_DENY):
	cargo install --locked --quiet cargo-deny@$(CARGO_DENY_VERSION) --root .local/tools/cargo-deny-$(CARGO_DENY_VERSION)

build-local:
	cargo build --locked -p local-gateway -p onboarding-admin

## Local stack: moto + table + demo tenants + gateway on 127.0.0.1:$(API_PORT).
run: $(PY_TOOLS) build-local
	scripts/run-local.sh

## A bearer token for the local gateway: make token TENANT=<id> [SCOPES="a b"]
token:
	@cargo run --quiet --locked -p local-gateway --bin dev-token -- $(TENANT) $(SCOPES)

## Everything CI checks.
test: $(PY_TOOLS) fmt-check deny lint phone-metadata-check validate
	scripts/test.sh

fmt-check:
	cargo fmt --all -- --check

fmt:
	cargo fmt --all

lint:
	cargo clippy --locked --workspace --all-targets -- -D warnings

## Supply chain (deny.toml): licences, banned crates, sources. Offline: no advisory database.
deny: $(CARGO_DENY)
	$(CARGO_DENY) --offline --locked check licenses bans sources

## The phone metadata copy equals the locked rlibphonenumber's; `make phone-metadata` refreshes it.
phone-metadata-check:
	scripts/phone-metadata.sh

phone-metadata:
	scripts/phone-metadata.sh --update

## Template checks, offline: SAM's validator with its linter, and cfn-lint.
validate: $(PY_TOOLS) $(SAM_TOOLS)
	$(SAM) validate --lint --region us-east-1
	$(VENV)/bin/cfn-lint template.yaml

## arm64 Lambda artefacts with sam + cargo-lambda (zig from the venv). Needs the Rust target:
##   rustup target add aarch64-unknown-linux-gnu
build: $(SAM_TOOLS)
	@rustup target list --installed 2>/dev/null | grep -q aarch64-unknown-linux-gnu || \
	  { echo "missing Rust target: rustup target add aarch64-unknown-linux-gnu" >&2; exit 1; }
	$(SAM) build

## Deploy: make deploy [ENV=prod]. Guided when samconfig.toml is missing.
deploy: build
	@if [ -f samconfig.toml ]; then $(SAM) deploy --config-env $(ENV); else $(SAM) deploy --guided; fi

## Speed and size targets (release builds; not part of make test): one table, one run.
bench: $(PY_TOOLS)
	scripts/bench.sh

clean:
	rm -rf target $(VENV) .local
