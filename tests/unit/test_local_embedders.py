"""Both local embedders, over real HTTP through the openai SDK, and the classify recipe run on
each through the worker's own client. No fakes: these are the models' own vectors."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest
from openai import AsyncOpenAI

from apps.model import ensemble
from apps.worker.models import ModelClient
from apps.worker.tasks import classify
from jobrelay.contract import JobInput, JobRecord
from tests.unit.gateways import gateway_for

EMBEDDERS = ["all-MiniLM-L6-v2", "multilingual-e5-small"]


@pytest.fixture
async def client(local_models_url: str) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=local_models_url, api_key="local", max_retries=0) as client:
        yield client


async def _vectors(client: AsyncOpenAI, model: str, texts: list[str]) -> np.ndarray:
    resp = await client.embeddings.create(model=model, input=texts, encoding_format="float")
    assert resp.model == model
    assert resp.usage.prompt_tokens > 0
    return np.array([d.embedding for d in sorted(resp.data, key=lambda d: d.index)])


@pytest.mark.anyio
@pytest.mark.parametrize("model", EMBEDDERS)
async def test_paraphrases_land_closer_than_unrelated_text(client: AsyncOpenAI, model: str) -> None:
    cat, kitten, tax = await _vectors(
        client,
        model,
        ["A cat sits on the mat.", "A kitten is lying on the rug.", "Quarterly tax filing is due."],
    )
    for vector in (cat, kitten, tax):
        assert vector.shape == (384,)
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-4)
    assert float(cat @ kitten) > float(cat @ tax) + 0.05


@pytest.mark.anyio
async def test_e5_matches_a_sentence_across_languages(client: AsyncOpenAI) -> None:
    german, english, unrelated = await _vectors(
        client,
        "multilingual-e5-small",
        ["Der Hund schläft im Garten.", "The dog is sleeping in the garden.", "Stocks fell."],
    )
    assert float(german @ english) > float(german @ unrelated) + 0.05


@pytest.mark.anyio
async def test_e5_embeds_queries_and_passages_differently(client: AsyncOpenAI) -> None:
    text = "how much protein should an adult eat per day"
    vectors = []
    for input_type in ("query", "passage"):
        resp = await client.embeddings.create(
            model="multilingual-e5-small",
            input=[text],
            encoding_format="float",
            extra_body={"input_type": input_type},
        )
        vectors.append(np.array(resp.data[0].embedding))
    query, passage = vectors
    assert 0.8 < float(query @ passage) < 0.9999  # the same text, a different prefix


def _job(text: str, **params: object) -> JobRecord:
    return JobRecord.new("classify", JobInput(text=text), dict(params), {})


@pytest.fixture(params=EMBEDDERS)
async def models(
    request: pytest.FixtureRequest, local_models_url: str
) -> AsyncIterator[ModelClient]:
    gateway = gateway_for(local_models_url, embedding_model=request.param)
    yield ModelClient(gateway, "classify", None, 1)
    await gateway.close()


@pytest.mark.anyio
async def test_descriptions_and_examples_steer_a_subtle_label(models: ModelClient) -> None:
    result = await classify.run(
        _job(
            "It stopped charging after a month and support never replied.",
            labels=["positive", "negative", "neutral"],
            descriptions={"negative": "The writer is unhappy, disappointed or angry."},
            examples={
                "negative": ["Broke within a week and nobody answers my emails."],
                "positive": ["Absolutely delighted with it, would buy again."],
            },
        ),
        models,
    )
    assert result.output["label"] == "negative"
    assert result.model in EMBEDDERS
    assert result.usage.prompt_tokens > 0


@pytest.mark.anyio
async def test_multi_label_returns_every_tag_that_plainly_applies(models: ModelClient) -> None:
    result = await classify.run(
        _job(
            "The courier lost my parcel, so please refund the order.",
            labels=["shipping", "refund", "login", "feature request", "bug"],
            descriptions={
                "shipping": "Delivery, tracking, couriers, late or missing parcels.",
                "refund": "Returns and getting money back.",
                "login": "Signing in, passwords, locked accounts.",
                "feature request": "Asking for something the product does not do yet.",
                "bug": "Something in the app or website is broken or shows an error.",
            },
            examples={
                "shipping": ["My parcel hasn't arrived yet.", "The tracking link shows nothing."],
                "refund": ["I want a refund for this order.", "How do I send the item back?"],
            },
            multi_label=True,
        ),
        models,
    )
    output = result.output
    assert set(output["labels"]) == {"shipping", "refund"}
    assert output["label"] == output["labels"][0]
    assert output["threshold"] == pytest.approx(0.75)
    assert all(output["scores"][label] >= output["threshold"] for label in output["labels"])


@pytest.mark.anyio
async def test_the_minilm_e5_embedder_is_the_weighted_mean_of_both_cosines(
    client: AsyncOpenAI,
) -> None:
    texts = ["The parcel arrived late.", "My delivery was delayed."]
    minilm = await _vectors(client, "all-MiniLM-L6-v2", texts)
    e5 = await _vectors(client, "multilingual-e5-small", texts)
    both = await _vectors(client, ensemble.MODEL_ID, texts)
    assert both.shape == (2, 768)
    weight = ensemble.E5_WEIGHT
    expected = (1 - weight) * float(minilm[0] @ minilm[1]) + weight * float(e5[0] @ e5[1])
    assert float(both[0] @ both[1]) == pytest.approx(expected, abs=1e-4)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("Terrible. It broke after one day and support never answered.", "negative"),
        ("I love this product, it works perfectly!", "positive"),
        ("The package arrived on Tuesday.", "neutral"),
    ],
)
async def test_the_default_recipe_gets_obvious_sentiments_right_with_bare_labels(
    local_models_url: str, text: str, label: str
) -> None:
    gateway = gateway_for(local_models_url, embedding_model=ensemble.MODEL_ID)
    try:
        models = ModelClient(gateway, "classify", None, 1)
        result = await classify.run(_job(text, labels=["positive", "negative", "neutral"]), models)
    finally:
        await gateway.close()
    assert result.output["label"] == label, result.output
    assert result.model == ensemble.MODEL_ID
