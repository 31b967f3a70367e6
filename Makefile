# The whole surface: setup, run, test, lint. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
VENV := .venv/bin

.PHONY: setup run test lint unit

setup:
	@scripts/setup.sh

run: setup
	@scripts/run.sh

lint: setup
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/mypy

unit: setup
	$(VENV)/pytest tests/unit

test: lint
	$(VENV)/pytest
