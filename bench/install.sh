#!/usr/bin/env bash
# `make bench` only: the `bench` extras of pyproject.toml (Celery with its Redis client for the
# baseline, py-spy for the profiles) into .venv, once per version of pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=.venv/.bench-installed-$(sha256sum pyproject.toml | cut -c1-16)
if [[ ! -f "$stamp" ]]; then
  echo "bench: installing the bench extras into .venv"
  .venv/bin/pip install --quiet -e '.[dev,bench]'
  rm -f .venv/.bench-installed-*
  touch "$stamp"
fi
