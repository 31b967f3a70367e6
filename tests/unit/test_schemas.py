from pathlib import Path

import pytest

from jobrelay.contract.schemas import CONTRACTS, render

CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "contracts"


@pytest.mark.parametrize("name", sorted(CONTRACTS))
def test_published_schema_matches_the_model(name: str) -> None:
    published = CONTRACTS_DIR / f"{name}.schema.json"
    assert published.exists(), f"{published} is missing: run `make contracts`"
    assert published.read_text() == render(CONTRACTS[name]), (
        f"{published.name} has drifted from the code: run `make contracts` and commit it"
    )


def test_every_published_schema_has_a_model() -> None:
    names = {p.name.removesuffix(".schema.json") for p in CONTRACTS_DIR.glob("*.schema.json")}
    assert names == set(CONTRACTS)
