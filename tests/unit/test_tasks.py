import pytest

from jobrelay.tasks import ClassifyParams, EmbedParams, UnknownTask, ValidationError, parse_params


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
