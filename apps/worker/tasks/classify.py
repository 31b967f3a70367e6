"""Zero-shot classification by embeddings: the label whose embedding is nearest the text's.

Works on any embeddings endpoint, so the local model and a hosted one answer alike.
"""

from __future__ import annotations

import numpy as np

from apps.worker.models import ModelClient
from jobrelay.contract import JobRecord, JobResult, Usage
from jobrelay.tasks import ClassifyParams

# Cosine similarities of sentence embeddings sit in a narrow band (0.0 to 0.6 for MiniLM), so
# a softmax over them needs a low temperature to say which label wins with any conviction.
# The scores rank labels; they are not calibrated probabilities.
_TEMPERATURE = 0.05


async def run(record: JobRecord, models: ModelClient) -> JobResult:
    params = ClassifyParams.model_validate(record.params)
    text = await models.embed([record.input.require_text()])
    labels = await models.embed_labels(params.labels)
    similarity = labels.vectors @ text.vectors[0]
    weights = np.exp((similarity - similarity.max()) / _TEMPERATURE)
    scores = weights / weights.sum()
    ranked = sorted(zip(params.labels, scores.tolist(), strict=True), key=lambda p: -p[1])
    usage = Usage(
        prompt_tokens=text.usage.prompt_tokens + labels.usage.prompt_tokens,
        total_tokens=text.usage.total_tokens + labels.usage.total_tokens,
    )
    return JobResult(
        output={"label": ranked[0][0], "scores": {label: round(s, 4) for label, s in ranked}},
        model=text.model,
        usage=usage,
    )
