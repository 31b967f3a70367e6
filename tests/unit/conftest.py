from collections.abc import Iterator

import pytest

from apps.model.settings import ModelSettings
from tests.unit.local_model_server import serving

# Small enough that a test can overflow it with a few hundred words, large enough for the rest.
TEST_CONTEXT_TOKENS = 512


@pytest.fixture(scope="session")
def local_models_url() -> Iterator[str]:
    """One real local model server (every embedder and the chat model) for the whole run."""
    settings = ModelSettings(
        port=1,
        embedders=["all-MiniLM-L6-v2", "multilingual-e5-small", "bge-small-en-v1.5"],
        chat=True,
        chat_context_tokens=TEST_CONTEXT_TOKENS,
    )
    with serving(settings) as url:
        yield url
