// A two-turn conversation with a tool-calling agent, traced with the OpenTelemetry SDK for
// JavaScript (what TypeScript agents run) under the GenAI semantic conventions, and
// exported over OTLP to `reasonkit-audit collect`.
//
// Nothing here calls a model: the run is scripted, so what the collector must record is
// known.
//
//     NODE_PATH=target/otel-node/node_modules node otel_js_run.cjs ENDPOINT PROTOCOL CONVERSATION
//
// PROTOCOL is `http` (http/protobuf, ENDPOINT like http://127.0.0.1:4318/v1/traces, each
// span exported alone as it ends, children first) or `grpc` (ENDPOINT like
// http://127.0.0.1:4317, spans batched). Exits 1 unless the collector acknowledged every
// span.
"use strict";

const { BasicTracerProvider, BatchSpanProcessor, SimpleSpanProcessor } = require("@opentelemetry/sdk-trace-base");
const { resourceFromAttributes } = require("@opentelemetry/resources");
const { context, trace, SpanKind, SpanStatusCode } = require("@opentelemetry/api");

const [endpoint, protocol, conversation] = process.argv.slice(2);

function exporter() {
  if (protocol === "grpc") {
    const { OTLPTraceExporter } = require("@opentelemetry/exporter-trace-otlp-grpc");
    return new OTLPTraceExporter({ url: endpoint });
  }
  const { OTLPTraceExporter } = require("@opentelemetry/exporter-trace-otlp-proto");
  return new OTLPTraceExporter({ url: endpoint });
}

// Counts the spans the collector answered success for.
let acknowledged = 0;
const inner = exporter();
const counting = {
  export(spans, done) {
    inner.export(spans, (result) => {
      if (result.code === 0) acknowledged += spans.length;
      done(result);
    });
  },
  shutdown: () => inner.shutdown(),
  forceFlush: () => (inner.forceFlush ? inner.forceFlush() : Promise.resolve()),
};

const provider = new BasicTracerProvider({
  resource: resourceFromAttributes({ "service.name": "claims-web" }),
  spanProcessors: [protocol === "grpc" ? new BatchSpanProcessor(counting) : new SimpleSpanProcessor(counting)],
});
const tracer = provider.getTracer("claims.web", "1.0.0");
const messages = (role, text) => JSON.stringify([{ role, parts: [{ type: "text", content: text }] }]);

// One turn: the agent's run (the trace's root), a model call, then a tool that fails or
// answers. Parents are given explicitly: no context manager is needed.
function turn(n, question, answer, toolFails) {
  const root = tracer.startSpan("invoke_agent claims", {
    kind: SpanKind.INTERNAL,
    attributes: {
      "gen_ai.operation.name": "invoke_agent",
      "gen_ai.agent.name": "claims",
      "gen_ai.conversation.id": conversation,
      "gen_ai.input.messages": messages("user", question),
    },
  });
  const inside = trace.setSpan(context.active(), root);
  tracer
    .startSpan(
      "chat gpt-4o",
      {
        kind: SpanKind.CLIENT,
        attributes: {
          "gen_ai.operation.name": "chat",
          "gen_ai.request.model": "gpt-4o",
          "gen_ai.usage.input_tokens": 100 + n,
          "gen_ai.usage.output_tokens": 10,
        },
      },
      inside,
    )
    .end();
  const tool = tracer.startSpan(
    "execute_tool lookup_claim",
    {
      attributes: {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "lookup_claim",
        "gen_ai.tool.call.arguments": JSON.stringify({ claim: 1400 + n }),
      },
    },
    inside,
  );
  if (toolFails) {
    tool.recordException(new Error("claims database timed out"));
    tool.setAttribute("error.type", "TimeoutError");
    tool.setStatus({ code: SpanStatusCode.ERROR, message: "claims database timed out" });
  } else {
    tool.setAttribute("gen_ai.tool.call.result", JSON.stringify({ amount: 950 }));
  }
  tool.end();
  root.setAttribute("gen_ai.output.messages", messages("assistant", answer));
  root.end();
}

async function main() {
  turn(1, "Is claim 1401 covered?", "The claims database timed out; please ask again.", true);
  // A person answers between two turns. Without a pause the second turn could seem to end
  // first: the SDK anchors each trace's clock to Date.now(), whole milliseconds, at its
  // root's start.
  await new Promise((resolve) => setTimeout(resolve, 50));
  turn(2, "Is claim 1402 covered?", "Claim 1402 is covered: 950.", false);
  await provider.forceFlush();
  await provider.shutdown();
  console.log(JSON.stringify({ acknowledged }));
  process.exit(acknowledged === 6 ? 0 : 1);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
