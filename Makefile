# `make serve` and `make test` work on a fresh machine: the first target that
# needs the virtualenv creates it and installs kvgrpc (editable) into it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.kvgrpc-installed
PROTO := proto/kvgrpc/v1/keyvalue.proto

.PHONY: serve test lint proto clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

## serve: run the server on the embedded default store (SQLite in ./data)
serve: $(STAMP)
	$(BIN)/kvgrpc serve

## test: run the whole test suite
test: $(STAMP)
	$(BIN)/python -m pytest

## lint: ruff over the sources and tests
lint: $(STAMP)
	$(BIN)/ruff check client server tests proto bench
	$(BIN)/ruff format --check client server tests proto bench

## proto: regenerate the committed Python stubs from the .proto
proto: $(STAMP)
	$(BIN)/python proto/generate.py client

clean:
	rm -rf $(VENV) build *.egg-info client/*.egg-info server/*.egg-info
