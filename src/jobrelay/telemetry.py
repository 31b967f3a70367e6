"""Traces: one trace per job, from the submit request to the last job event.

The W3C trace context rides every hop on its own: the FastAPI instrumentation reads
`traceparent` on each request, the gRPC one writes it on each call to the Dapr sidecar (so
daprd's spans, and the CloudEvent it publishes, belong to the job's trace), the subscriber's
sidecar hands it to the app with each delivery, and the httpx one writes it on each model
call and webhook. Intake also stores the submit's `traceparent` on the job record, so a
delivery that arrives without it (a broker that dropped it, a sidecar with tracing off)
still joins the job's trace (`job_span`).

The job id cannot ride the broker (Dapr forwards `traceparent`, not `baggage`), so each app
binds it when it learns it (`bind_job`), and a span processor puts it on every span the app
starts from then on. Where it can travel as W3C baggage (the worker's model calls), it does,
so the model server's spans carry it too.

Export is OTLP/HTTP to the endpoint of the standard settings (`OTEL_EXPORTER_OTLP_ENDPOINT`,
or `..._TRACES_ENDPOINT`), or Zipkin's JSON with `OTEL_TRACES_EXPORTER=zipkin` (the local
viewer of `make traces`), for the share of jobs `OTEL_TRACES_SAMPLER_ARG` asks. Sampling is
parent-based: the submit decides, every later hop follows, so a job is traced whole or not at
all. With no endpoint set, the apps make no spans at all (see `setup`), and nothing
complains.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from fastapi import FastAPI
from opentelemetry import baggage, context, propagate, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.zipkin.json import ZipkinExporter
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient, filters
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, TraceFlags
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)

# Span attributes every span of a job carries (jobrelay's own namespace, as OpenTelemetry
# asks of attributes that no semantic convention defines).
JOB_ID = "jobrelay.job.id"
JOB_TASK = "jobrelay.job.task"
# W3C baggage key that carries the job id over plain HTTP hops (the model call).
_BAGGAGE_JOB_ID = "jobrelay.job.id"
# Paths no one wants a trace of: probes, scrapes, and daprd reading the app's subscriptions.
_UNTRACED_PATHS = "healthz,metrics,dapr/subscribe,dapr/config"
# The gRPC method a /healthz probe calls every few seconds.
_UNTRACED_GRPC = "GetMetadata"

_TRACEPARENT_VERSION = "00"


@dataclass(frozen=True, slots=True)
class BoundJob:
    id: str
    task: str | None


# The job this request or delivery works on. Each request runs in a task of its own, which
# copies the context, so a binding never leaks into another request.
_job: ContextVar[BoundJob | None] = ContextVar("jobrelay_job", default=None)


class TelemetrySettings(BaseSettings):
    """The standard OpenTelemetry settings jobrelay reads itself (the exporter reads the rest:
    headers, timeout, the traces-only endpoint's exact URL)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    otel_sdk_disabled: bool = Field(default=False, description="true: no tracing at all.")
    otel_service_name: str | None = Field(default=None, description="Overrides the app's name.")
    otel_traces_exporter: str = Field(
        default="otlp",
        description="`otlp`, `zipkin` (the local viewer, `make traces`) or `none` (no export).",
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None, description="OTLP/HTTP base URL, e.g. http://127.0.0.1:4318."
    )
    otel_exporter_otlp_traces_endpoint: str | None = Field(
        default=None, description="Full URL for traces only, e.g. http://host:4318/v1/traces."
    )
    otel_traces_sampler_arg: float = Field(
        default=0.1,
        ge=0.0,
        le=1.0,
        description="Share of jobs traced when spans are exported: each submit decides, and "
        "every later hop of the job follows its decision (parent-based), so a sampled job is "
        "traced whole. 1 traces every job.",
    )

    @property
    def exporter(self) -> str | None:
        """Where spans go: None when nowhere is configured, so nothing is sent or retried."""
        kind = self.otel_traces_exporter.lower()
        if kind == "zipkin":
            return kind  # its endpoint has a default: the local viewer's
        endpoint = self.otel_exporter_otlp_traces_endpoint or self.otel_exporter_otlp_endpoint
        return "otlp" if kind == "otlp" and endpoint else None


class _JobAttributes(SpanProcessor):
    """Puts the bound job's id and task on every span as it starts."""

    def on_start(self, span: Span, parent_context: context.Context | None = None) -> None:
        bound = _job.get()
        if bound is not None:
            span.set_attribute(JOB_ID, bound.id)
            if bound.task:
                span.set_attribute(JOB_TASK, bound.task)
            return
        carried = baggage.get_baggage(_BAGGAGE_JOB_ID, parent_context)
        if isinstance(carried, str):
            span.set_attribute(JOB_ID, carried)


_provider: TracerProvider | None = None


def setup(service: str) -> bool:
    """Install the tracer provider and the client instrumentations, once per process; False
    (and nothing installed) when spans would go nowhere.

    With no exporter, an app neither records nor makes spans at all: instrumenting every
    request, gRPC call and model call costs a good share of a job's CPU even for spans that
    are never recorded. Logs then carry job ids but no trace ids, and the sidecars start
    their own traces (which go nowhere either).
    """
    global _provider  # one provider per process, as OpenTelemetry requires
    settings = TelemetrySettings()
    if _provider is not None:
        return True
    if settings.otel_sdk_disabled or settings.exporter is None:
        return False
    name = settings.otel_service_name or service
    ratio = settings.otel_traces_sampler_arg
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: name}),
        sampler=ParentBased(TraceIdRatioBased(ratio)),
    )
    provider.add_span_processor(_JobAttributes())
    # The exporters read their endpoint, headers and timeout from the same OTEL_* settings.
    if settings.exporter == "otlp":
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider.add_span_processor(BatchSpanProcessor(ZipkinExporter()))
    trace.set_tracer_provider(provider)
    _provider = provider
    HTTPXClientInstrumentor().instrument()
    _instrument_grpc()
    log.info("tracing as %s; export to %s, %g of jobs", name, settings.exporter, ratio)
    return True


def _instrument_grpc() -> None:
    # The Dapr client's gRPC channel is made inside each app's lifespan, after this runs, so
    # patching grpc.aio's channel constructors here reaches it.
    untraced = filters.negate(filters.method_name(_UNTRACED_GRPC))
    GrpcAioInstrumentorClient(filter_=untraced).instrument()  # type: ignore[no-untyped-call]


def shutdown() -> None:
    """Export what is still buffered (an app that stops mid-job still shows the job)."""
    if _provider is not None:
        _provider.shutdown()


def instrument_app(app: FastAPI, service: str) -> None:
    """Trace every request `app` serves, as part of the caller's trace where it sent one."""
    if not setup(service):
        log.info("tracing off: no exporter configured (OTEL_EXPORTER_OTLP_ENDPOINT)")
        return
    FastAPIInstrumentor.instrument_app(
        app, excluded_urls=_UNTRACED_PATHS, exclude_spans=["receive", "send"]
    )


def bind_job(job_id: str, task: str | None = None, traceparent: str | None = None) -> None:
    """From here on in this request or delivery, spans and log lines name this job.

    The current span (the request's, started before the job was known) gets the attributes
    now; `traceparent`, the job's own trace, is linked from it when it is another trace (a
    client polling status), so a poll leads to its job.
    """
    _job.set(BoundJob(job_id, task))
    # Not detached: the binding lives exactly as long as this request's task and context.
    context.attach(baggage.set_baggage(_BAGGAGE_JOB_ID, job_id))
    span = trace.get_current_span()
    span.set_attribute(JOB_ID, job_id)
    if task:
        span.set_attribute(JOB_TASK, task)
    job_trace = parse_traceparent(traceparent)
    here = span.get_span_context()
    if job_trace is not None and here.is_valid and here.trace_id != job_trace.trace_id:
        span.add_link(job_trace, {"jobrelay.link": "job"})


def bound_job() -> BoundJob | None:
    return _job.get()


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span, to store with a job; None when untraced."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    flags = int(ctx.trace_flags)
    return f"{_TRACEPARENT_VERSION}-{ctx.trace_id:032x}-{ctx.span_id:016x}-{flags:02x}"


def parse_traceparent(value: str | None) -> SpanContext | None:
    parts = (value or "").split("-")
    if len(parts) != 4 or parts[0] != _TRACEPARENT_VERSION:
        return None
    try:
        trace_id, span_id, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3], 16)
    except ValueError:
        return None
    ctx = SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags))
    return ctx if ctx.is_valid else None


@contextmanager
def delivery_span(name: str, headers: Mapping[str, str]) -> Iterator[trace.Span]:
    """The span of one delivery from the app's sidecar, in the trace its `traceparent`
    header names (the publisher's: Dapr carries it in the CloudEvent and hands it over)."""
    tracer = trace.get_tracer(__name__)
    with tracer.start_as_current_span(
        name, context=propagate.extract(headers), kind=trace.SpanKind.SERVER
    ) as span:
        yield span


@contextmanager
def job_span(name: str, job_id: str, traceparent: str | None) -> Iterator[trace.Span]:
    """A span for work on a job, always in the job's trace.

    Normally the delivery already is (Dapr carried the context), and this is its child. A
    delivery that arrived in another trace, or in none, would split the job in two: then the
    span's parent is the submit's stored context, and the delivery is linked instead.
    """
    job_trace = parse_traceparent(traceparent)
    here = trace.get_current_span().get_span_context()
    parent: context.Context | None = None
    links: list[Link] = []
    if job_trace is not None and (not here.is_valid or here.trace_id != job_trace.trace_id):
        parent = trace.set_span_in_context(NonRecordingSpan(job_trace))
        if here.is_valid:
            links.append(Link(here, {"jobrelay.link": "delivery"}))
    tracer = trace.get_tracer(__name__)
    with tracer.start_as_current_span(
        name, context=parent, links=links, attributes={JOB_ID: job_id}
    ) as span:
        yield span
