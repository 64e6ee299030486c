"""OpenTelemetry tracing, the optional extra ``referflow[otel]``: Flask, SQLAlchemy and requests.

Imported only when OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) is set; the exporter and
the resource read the standard OTEL_* variables themselves (endpoint, headers, OTEL_SERVICE_NAME,
OTEL_RESOURCE_ATTRIBUTES). Spans carry the request id as ``referflow.request_id``.
"""

from __future__ import annotations

from flask import Flask, g
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from sqlalchemy.engine import Engine


def instrument(app: Flask, engine: Engine, processor: SpanProcessor | None = None) -> TracerProvider:
    """Trace the app's requests, its SQL and outbound HTTP; export by OTLP unless given a processor."""
    provider = TracerProvider(resource=_resource())
    provider.add_span_processor(processor or BatchSpanProcessor(OTLPSpanExporter()))
    FlaskInstrumentor.instrument_app(app, tracer_provider=provider)
    # These two patch the process (one app per process in production); a second call is a no-op.
    # The SQLAlchemy instrumentation declares "< 2.1" only because it predates 2.1; it hooks the
    # engine's cursor events, which 2.1 keeps (tests/test_observability.py checks the SQL spans;
    # the extra adds greenlet, which its import of sqlalchemy.ext.asyncio needs on 2.1).
    SQLAlchemyInstrumentor().instrument(engine=engine, tracer_provider=provider, skip_dep_check=True)
    RequestsInstrumentor().instrument(tracer_provider=provider)
    app.before_request(_tag_span)  # after observability's hook, which binds the request id
    app.extensions["tracing"] = provider
    return provider


def _resource() -> Resource:
    detected = Resource.create()  # the SDK's defaults and the OTEL_* environment
    if str(detected.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        return detected.merge(Resource({SERVICE_NAME: "referflow"}))
    return detected


def _tag_span() -> None:
    request_id = g.get("request_id")
    if request_id:
        trace.get_current_span().set_attribute("referflow.request_id", request_id)
