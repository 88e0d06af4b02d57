# `make serve` and `make test` work on a fresh machine: the first target that
# needs the virtualenv creates it and installs kvgrpc (editable) into it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.kvgrpc-installed
PROTO := proto/kvgrpc/v1/keyvalue.proto
# naas-abi-core pulls in LLM and database stacks; its key/value port needs
# none of them, so it is installed without dependencies, for tests only.
NAAS_ABI_CORE_VERSION := 3.1.0

# Node.js packages (the polyglot client test, buf); installed when npm exists.
# Without npm those tests skip locally and fail under CI=true.
NPM_DIRS := $(patsubst %/package-lock.json,%,$(wildcard examples/node/package-lock.json tools/buf/package-lock.json))
NODE_DEPS := $(foreach d,$(NPM_DIRS),$(d)/node_modules/.installed)
HAVE_NPM := $(shell command -v npm 2>/dev/null)

.PHONY: serve test bench lint proto docs clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps 'naas-abi-core==$(NAAS_ABI_CORE_VERSION)'
	touch $@

%/node_modules/.installed: %/package-lock.json
	npm ci --prefix $* --no-audit --no-fund --loglevel=error
	touch $@

## serve: run the server on the embedded default store (SQLite in ./data)
serve: $(STAMP)
	$(BIN)/kvgrpc serve

## test: run the whole test suite
test: $(STAMP) $(if $(HAVE_NPM),$(NODE_DEPS))
	$(BIN)/python -m pytest

## bench: the full benchmark, side by side with etcd, Redis and a bare grpcio server
## (installs etcd-server and redis-server with apt-get if they are missing and you are root)
bench: $(STAMP)
	@command -v etcd >/dev/null && command -v redis-server >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq etcd-server redis-server >/dev/null; } || \
	  echo "bench: etcd-server and/or redis-server missing (apt-get install etcd-server redis-server); comparing without them"
	$(BIN)/python bench/kvbench.py

## lint: ruff over the sources and tests
lint: $(STAMP)
	$(BIN)/ruff check client server tests proto bench
	$(BIN)/ruff format --check client server tests proto bench

## proto: regenerate the committed Python stubs from the .proto
proto: $(STAMP)
	$(BIN)/python proto/generate.py client

## docs: regenerate docs/api.md from the .proto comments
docs: $(STAMP)
	$(BIN)/python proto/gen_api_docs.py > docs/api.md

clean:
	rm -rf $(VENV) build *.egg-info client/*.egg-info server/*.egg-info $(foreach d,$(NPM_DIRS),$(d)/node_modules)
