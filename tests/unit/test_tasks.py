import pytest
from pydantic import ValidationError

from jobrelay.task_catalog import UnknownTask, parse_params
from jobrelay.task_params import ClassifyParams, EmbedParams


def test_classify_labels_are_trimmed() -> None:
    params = parse_params("classify", {"labels": [" positive", "negative "]})
    assert isinstance(params, ClassifyParams)
    assert params.labels == ["positive", "negative"]


@pytest.mark.parametrize(
    "labels",
    [["only-one"], ["same", "same"], ["ok", "  "], []],
    ids=["one", "duplicate", "blank", "none"],
)
def test_classify_refuses_unusable_labels(labels: list[str]) -> None:
    with pytest.raises(ValidationError):
        parse_params("classify", {"labels": labels})


def test_classify_refuses_unknown_params() -> None:
    with pytest.raises(ValidationError):
        parse_params("classify", {"labels": ["a", "b"], "temperature": 2})


def test_embed_takes_no_params() -> None:
    assert isinstance(parse_params("embed", {}), EmbedParams)


def test_unknown_task_names_the_known_ones() -> None:
    with pytest.raises(UnknownTask, match="classify, describe_image, embed"):
        parse_params("dance", {})


def test_classify_takes_descriptions_examples_and_multi_label() -> None:
    params = parse_params(
        "classify",
        {
            "labels": ["bug", "billing"],
            "descriptions": {"bug": "Something is broken."},
            "examples": {"billing": ["I was charged twice."]},
            "template": "This ticket is about {label}.",
            "multi_label": True,
            "threshold": 0.5,
        },
    )
    assert isinstance(params, ClassifyParams)
    assert params.examples == {"billing": ["I was charged twice."]}


@pytest.mark.parametrize(
    ("extra", "complaint"),
    [
        ({"descriptions": {"bgu": "typo"}}, "not in labels"),
        ({"examples": {"nope": ["x"]}}, "not in labels"),
        ({"examples": {"a": [""]}}, "at least 1 character"),
        ({"examples": {"a": ["x"] * 21}}, "at most 20"),
        ({"threshold": 0.5}, "only with multi_label"),
        ({"template": "no placeholder here"}, "{label}"),
    ],
    ids=["description-key", "example-key", "empty-example", "too-many", "lone-threshold", "tpl"],
)
def test_classify_refuses_inconsistent_recipes(extra: dict[str, object], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        parse_params("classify", {"labels": ["a", "b"], **extra})
