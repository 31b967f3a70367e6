"""The operations files name only metrics the apps export; log lines carry the job and trace."""

from __future__ import annotations

import contextvars
import json
import logging
import re
from pathlib import Path

import yaml
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import REGISTRY

from jobrelay import logs, metrics, telemetry

OBSERVABILITY = Path(__file__).resolve().parents[2] / "k8s" / "base" / "observability"
_NAME = re.compile(r"\b(jobrelay_[a-z_]+)")


def _exported() -> set[str]:
    assert metrics.SUBMITTED  # the module registers every metric on import
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.update(sample.name for sample in family.samples)
    return names


def _queries() -> list[str]:
    rules = yaml.safe_load((OBSERVABILITY / "prometheus-rules.yaml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    dashboard = json.loads((OBSERVABILITY / "grafana-dashboard.json").read_text())
    exprs += [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    return exprs


def test_alert_rules_and_dashboard_name_only_exported_metrics() -> None:
    # Labelled metrics export samples only once a label set is used: use one of each.
    for metric in (metrics.SUBMITTED, metrics.STARTED, metrics.DEAD_LETTERED):
        metric.labels("embed")
    metrics.FINISHED.labels("embed", "failed")
    metrics.RETRIED.labels("embed", "model_error")
    metrics.MODEL_RETRIED.labels("embed", "local")
    metrics.QUEUE_WAIT.labels("embed")
    metrics.MODEL_CALL.labels("embed", "local", "m", "ok")
    metrics.TOKENS.labels("embed", "m", "input")
    metrics.MODEL_IN_FLIGHT.labels("local")
    exported = _exported()
    named = {name for expr in _queries() for name in _NAME.findall(expr)}
    assert named, "no jobrelay metric in the rules or the dashboard"
    assert named <= exported, sorted(named - exported)


def test_a_traceparent_round_trips() -> None:
    value = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    parsed = telemetry.parse_traceparent(value)
    assert parsed is not None
    assert f"{parsed.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert telemetry.parse_traceparent("garbage") is None
    assert telemetry.parse_traceparent(None) is None


def test_log_lines_carry_the_bound_job_and_the_trace() -> None:
    tracer = TracerProvider().get_tracer(__name__)
    json_lines = logs.handler()
    job_fields = logs.JobAndTrace()  # runs in the logging thread, which sees the context

    def log_inside_a_job() -> tuple[dict[str, str], int]:
        with tracer.start_as_current_span("work") as span:
            telemetry.bind_job("a" * 32, "embed")
            record = logging.LogRecord("t", logging.INFO, __file__, 1, "job %s", ("done",), None)
            assert job_fields.filter(record)
            return json.loads(json_lines.format(record)), span.get_span_context().trace_id

    # In a context of its own, so the binding ends with it, as a request's does.
    line, trace_id = contextvars.copy_context().run(log_inside_a_job)
    assert line["message"] == "job done"
    assert line["level"] == "INFO"
    assert (line["job_id"], line["task"]) == ("a" * 32, "embed")
    assert line["trace_id"] == f"{trace_id:032x}"
    assert telemetry.bound_job() is None
