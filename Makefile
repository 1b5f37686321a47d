.DEFAULT_GOAL := help
PY ?= python3
PROFILE ?= ci

.PHONY: help build-dev build-release format lint test test-rust bench load

help:
	@echo "build-dev  build the extension into the active venv ($(PROFILE) profile)"
	@echo "format     ruff format + cargo fmt"
	@echo "lint       ruff, mypy, cargo fmt --check, clippy"
	@echo "test       cargo test + pytest"
	@echo "bench      criterion + pytest-benchmark"
	@echo "load       Locust traffic mix against a mock upstream (installs locust)"

build-dev:
	maturin develop --profile $(PROFILE) -E dev

build-release:
	maturin develop --release -E dev

format:
	ruff format python tests benches
	ruff check --fix python tests benches
	cargo fmt

lint:
	ruff format --check python tests benches
	ruff check python tests benches
	mypy
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --all-targets --no-default-features -- -D warnings

test-rust:
	cargo test --no-default-features

test: test-rust
	$(PY) -m pytest

bench:
	cargo bench --no-default-features
	$(PY) -m pytest benches -p benchmark --benchmark-only

load:
	$(PY) -m pip install -q "locust>=2.30"
	$(PY) benches/load/run_locust.py $(LOAD_ARGS)
