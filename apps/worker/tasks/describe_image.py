from __future__ import annotations

import base64

from apps.worker.model_client import ModelClient
from jobrelay.contract import JobRecord, JobResult
from jobrelay.task_params import DescribeImageParams


async def run(record: JobRecord, models: ModelClient) -> JobResult:
    params = DescribeImageParams.model_validate(record.params)
    file, content = record.input.file, record.input.content
    if file is None or content is None:
        raise ValueError("describe_image runs on an uploaded image, and none was loaded")
    data_url = f"data:{file.content_type};base64,{base64.b64encode(content).decode('ascii')}"
    text, usage, model = await models.describe_image(params.prompt, data_url)
    return JobResult(output={"description": text}, model=model, usage=usage)
