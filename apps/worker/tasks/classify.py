"""classify: zero-shot (or few-shot) classification by embeddings, single- or multi-label.

Works on any OpenAI-compatible embeddings endpoint, so the local model and a hosted one answer
alike; the recipe (apps/worker/tasks/zero_shot.py) is the one bench/classify_eval.py measures.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from apps.worker.model_client import ModelClient
from apps.worker.tasks import zero_shot
from apps.worker.tasks.zero_shot import LabelSpec
from jobrelay.contract import JobRecord, JobResult, Usage
from jobrelay.task_params import ClassifyParams


async def run(record: JobRecord, models: ModelClient) -> JobResult:
    params = ClassifyParams.model_validate(record.params)
    if not record.input.text:
        raise ValueError("classify needs text input")
    templates = (params.template,) if params.template else zero_shot.DEFAULT_TEMPLATES
    groups = [zero_shot.prototype_texts(spec, templates) for spec in _specs(params)]
    text = await models.embed([record.input.text])
    # Prototype texts repeat across jobs far more than inputs do; embed_labels caches them,
    # per tenant.
    labels = await models.embed_labels([t for group in groups for t in group], record.tenant)
    prototypes = zero_shot.prototypes(labels.vectors, [len(g) for g in groups])
    similarity = prototypes @ text.vectors[0]
    usage = Usage(
        prompt_tokens=text.usage.prompt_tokens + labels.usage.prompt_tokens,
        total_tokens=text.usage.total_tokens + labels.usage.total_tokens,
    )
    output = _multi(params, similarity) if params.multi_label else _single(params, similarity)
    return JobResult(output=output, model=text.model, usage=usage)


def _specs(params: ClassifyParams) -> list[LabelSpec]:
    return [
        LabelSpec(
            label,
            params.descriptions.get(label),
            tuple(params.examples.get(label, ())),
        )
        for label in params.labels
    ]


def _single(params: ClassifyParams, similarity: zero_shot.Vectors) -> dict[str, Any]:
    scores = zero_shot.softmax_scores(similarity)
    ranked = sorted(zip(params.labels, scores.tolist(), strict=True), key=lambda p: -p[1])
    return {"label": ranked[0][0], "scores": {label: round(s, 4) for label, s in ranked}}


def _multi(params: ClassifyParams, similarity: zero_shot.Vectors) -> dict[str, Any]:
    threshold = (
        params.threshold if params.threshold is not None else zero_shot.MULTI_LABEL_THRESHOLD
    )
    chosen = zero_shot.chosen(similarity, threshold)
    z = zero_shot.standardised(similarity)
    order = np.argsort(-similarity)
    return {
        "label": params.labels[chosen[0]],
        "labels": [params.labels[i] for i in chosen],
        # Standard deviations above the mean over the labels: the scale `threshold` is on.
        "scores": {params.labels[i]: round(float(z[i]), 3) for i in order},
        "threshold": threshold,
    }
