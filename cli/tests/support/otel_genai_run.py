"""A two-turn tool-calling agent run, traced with the OpenTelemetry SDK under the GenAI
semantic conventions and exported over OTLP to `reasonkit-audit collect`.

Nothing here calls a model: the run is scripted, so what the collector must record is known.

    python otel_genai_run.py ENDPOINT PROTOCOL [--runs N] [--token T] [--batch] [--acked FILE] [--ca PEM]

PROTOCOL is `http` (http/protobuf, ENDPOINT like http://127.0.0.1:4318/v1/traces) or `grpc`
(ENDPOINT like http://127.0.0.1:4317). With --batch the spans go through a
BatchSpanProcessor; without it, each span is exported alone as it ends, children before
their parents, which is the hardest order for a receiver. With --acked, the span id of
every span the collector acknowledged is appended to FILE as soon as it answers.
"""

import argparse
import json
import sys

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode


def exporter(endpoint, protocol, token, ca):
    headers = {"Authorization": f"Bearer {token}"} if token else None
    if protocol == "http":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=endpoint, headers=headers, timeout=30, certificate_file=ca)
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    # gRPC metadata keys are lowercase.
    headers = {"authorization": f"Bearer {token}"} if token else None
    if ca:
        import grpc

        with open(ca, "rb") as f:
            credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
        return OTLPSpanExporter(endpoint=endpoint, credentials=credentials, headers=headers, timeout=30)
    return OTLPSpanExporter(endpoint=endpoint, insecure=True, headers=headers, timeout=30)


class Acknowledged:
    """An exporter that notes the spans its inner exporter got a success for."""

    def __init__(self, inner, path):
        self.inner = inner
        self.file = open(path, "a", encoding="utf-8") if path else None
        self.count = 0

    def export(self, spans):
        result = self.inner.export(spans)
        from opentelemetry.sdk.trace.export import SpanExportResult

        if result == SpanExportResult.SUCCESS:
            self.count += len(spans)
            if self.file:
                for span in spans:
                    self.file.write(format(span.context.span_id, "016x") + "\n")
                self.file.flush()
        return result

    def shutdown(self):
        self.inner.shutdown()
        if self.file:
            self.file.close()

    def force_flush(self, timeout_millis=30000):
        return self.inner.force_flush(timeout_millis)


def run(tracer, n):
    """One run: chat -> tool -> chat -> a tool that fails; the run itself is the root."""
    with tracer.start_as_current_span(
        "invoke_agent claims",
        kind=SpanKind.INTERNAL,
        attributes={
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": "claims",
            "gen_ai.conversation.id": f"conv-{n}",
            "gen_ai.input.messages": json.dumps(
                [{"role": "user", "parts": [{"type": "text", "content": f"Settle claim {1400 + n}"}]}]
            ),
        },
    ):
        with tracer.start_as_current_span(
            "chat gpt-4o",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 120,
                "gen_ai.usage.output_tokens": 30,
                "gen_ai.response.finish_reasons": ["tool_calls"],
            },
        ):
            pass
        with tracer.start_as_current_span(
            "execute_tool lookup_claim",
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "lookup_claim",
                "gen_ai.tool.call.id": "call_1",
                "gen_ai.tool.call.arguments": json.dumps({"claim": 1400 + n}),
                "gen_ai.tool.call.result": json.dumps({"amount": 950}),
            },
        ):
            pass
        with tracer.start_as_current_span(
            "chat gpt-4o",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 200,
                "gen_ai.usage.output_tokens": 15,
                "gen_ai.output.messages": json.dumps(
                    [{"role": "assistant", "parts": [{"type": "text", "content": "Approved: 950"}]}]
                ),
            },
        ):
            pass
        with tracer.start_as_current_span(
            "execute_tool notify_customer",
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "notify_customer",
            },
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            error = ConnectionError("mail server down")
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, "mail server down"))
            span.set_attribute("error.type", "ConnectionError")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("endpoint")
    parser.add_argument("protocol", choices=["http", "grpc"])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--token")
    parser.add_argument("--batch", action="store_true")
    parser.add_argument("--acked")
    parser.add_argument("--ca", help="trust this PEM certificate (a collector serving TLS)")
    args = parser.parse_args()

    provider = TracerProvider(resource=Resource.create({"service.name": "claims-service"}))
    span_exporter = exporter(args.endpoint, args.protocol, args.token, args.ca)
    span_exporter = Acknowledged(span_exporter, args.acked)
    processor = BatchSpanProcessor(span_exporter) if args.batch else SimpleSpanProcessor(span_exporter)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("claims.agent", "1.0")
    for n in range(args.runs):
        run(tracer, n)
    flushed = provider.force_flush(60_000)
    provider.shutdown()
    acknowledged = span_exporter.count
    print(json.dumps({"runs": args.runs, "flushed": flushed, "acknowledged": acknowledged}))
    # Five spans a run: exit 1 unless the collector acknowledged every one.
    return 0 if flushed and acknowledged == 5 * args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
