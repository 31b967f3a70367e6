"""The Dockerfile: multi-stage, pinned, non-root, and each image holds what its app imports.

No Docker engine runs here, so the images are not built in this suite; what can be checked
statically is: the Dockerfile's shape, and that no app other than the model imports a package
its image leaves out (scripts/k8s/image_requirements.py), which would fail only at pod start.
"""

from __future__ import annotations

import ast
import re
import tomllib
from collections.abc import Iterator
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from scripts.k8s.image_requirements import APPS, MODEL_ONLY, name_of, requirements

REPO = Path(__file__).resolve().parents[2]
SLIM_APPS = [app for app in APPS if app != "model"]


def _imports(folder: Path) -> Iterator[str]:
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                yield from (alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                yield node.module.split(".")[0]


def test_dockerfile_is_multistage_pinned_and_non_root() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11\.\d+-slim-\w+$", text, re.M)
    assert len(re.findall(r"^FROM ", text, re.M)) == 2
    assert len(re.findall(r"^ARG APP$", text, re.M)) == 2  # one per stage, as ARGs are scoped
    assert re.search(r"^USER 10001:10001$", text, re.M)
    assert re.search(r"^COPY apps/\$\{APP\} apps/\$\{APP\}$", text, re.M)
    assert 'python -m \\"apps.$JOBRELAY_APP\\"' in text


def test_one_dockerfile_for_every_python_app() -> None:
    """The root Dockerfile builds each Python app (APP=...); a worker in another language
    (apps/worker-go) brings its own."""
    python_apps = {p.parent for p in (REPO / "apps").glob("*/__init__.py")}
    assert python_apps
    assert not [d for d in python_apps if (d / "Dockerfile").exists()]


def test_no_image_installs_a_top_level_apps_package() -> None:
    assert (
        '"apps'
        not in tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
            "packages"
        ]["find"]["include"]
    )


@pytest.mark.parametrize("app", SLIM_APPS)
def test_slim_image_keeps_every_package_its_app_imports(app: str) -> None:
    """Every third-party import of the app and of jobrelay maps to a kept distribution."""
    distributions = packages_distributions()
    left_out = set()
    contract = REPO / "packages" / "contract" / "src" / "jobrelay"
    for folder in (REPO / "apps" / app, REPO / "src" / "jobrelay", contract):
        for module in _imports(folder):
            for dist in distributions.get(module, []):
                if name_of(dist) in MODEL_ONLY:
                    left_out.add(f"{module} ({dist})")
    assert not left_out, f"apps/{app} imports packages its image leaves out: {left_out}"


def test_worker_image_carries_the_models_file_it_reads() -> None:
    """The worker refuses to start without its models file, and its default path (the
    checkout's config/) does not exist in the image."""
    text = (REPO / "Dockerfile").read_text()
    copied = re.search(r"^COPY config/models\.yaml (\S+)$", text, re.M)
    assert copied, "the worker image must carry config/models.yaml"
    assert f"ENV JOBRELAY_WORKER_MODELS_FILE={copied.group(1)}" in text


def test_model_image_takes_every_pinned_requirement() -> None:
    assert len(requirements(REPO / "pyproject.toml", "model")) > len(
        requirements(REPO / "pyproject.toml", "worker")
    )


def test_apps_import_no_other_app() -> None:
    """Each image keeps only its own apps/<app>; a cross-app import would break it."""
    for app in APPS:
        for path in (REPO / "apps" / app).rglob("*.py"):
            others = [a for a in APPS if a != app]
            for other in others:
                assert f"apps.{other}" not in path.read_text(), f"{path} imports apps.{other}"
