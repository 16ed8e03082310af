"""The OpenAI Agents SDK, run offline, traced by OpenInference's instrumentation for it,
exported over OTLP/HTTP to `reasonkit-audit collect`.

A triage agent, behind an input guardrail, calls a tool, then hands off to a payments
agent, whose tool fails; the payments agent then answers. A second run asks about no claim
at all, and the guardrail stops it before any model is called. The model is scripted (a
`Model` of our own, below): no network, no key, the same runs every time.

    python openai_agents_run.py ENDPOINT
"""

import asyncio
import json
import sys

from agents import (
    Agent,
    GuardrailFunctionOutput,
    InputGuardrailTripwireTriggered,
    Runner,
    function_tool,
    input_guardrail,
    set_trace_processors,
)
from agents.items import ModelResponse
from agents.models.interface import Model
from agents.tracing import generation_span
from agents.usage import Usage
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)
from openinference.instrumentation.openai_agents import OpenAIAgentsInstrumentor
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor


@function_tool
def lookup_claim(claim: int) -> str:
    """Looks a claim up."""
    return json.dumps({"claim": claim, "amount": 950})


@function_tool
def pay_claim(claim: int) -> str:
    """Pays a claim."""
    raise RuntimeError("the bank refused the transfer")


@input_guardrail
async def names_a_claim(context, agent, input):
    """Lets through only requests that name a claim number."""
    named = any(ch.isdigit() for ch in str(input))
    return GuardrailFunctionOutput(output_info={"names_a_claim": named}, tripwire_triggered=not named)


def call(name, arguments, n):
    return ResponseFunctionToolCall(
        id=f"fc_{n}",
        call_id=f"call_{n}",
        name=name,
        arguments=json.dumps(arguments),
        type="function_call",
        status="completed",
    )


def message(text):
    return ResponseOutputMessage(
        id="msg_1",
        role="assistant",
        status="completed",
        type="message",
        content=[ResponseOutputText(text=text, type="output_text", annotations=[])],
    )


class ScriptedModel(Model):
    """Answers each call with the next output of its script."""

    def __init__(self, name, script):
        self.name = name
        self.script = list(script)

    async def get_response(
        self,
        system_instructions,
        input,
        model_settings,
        tools,
        output_schema,
        handoffs,
        tracing,
        *,
        previous_response_id=None,
        conversation_id=None,
        prompt=None,
    ):
        output = self.script.pop(0)
        usage = {"input_tokens": 100, "output_tokens": 20}
        with generation_span(
            model=self.name,
            input=[{"role": "user", "content": str(input)[:200]}],
            output=[item.model_dump() for item in output],
            usage=usage,
        ):
            pass
        return ModelResponse(
            output=output,
            usage=Usage(requests=1, input_tokens=100, output_tokens=20, total_tokens=120),
            response_id=None,
        )

    def stream_response(self, *args, **kwargs):
        raise NotImplementedError("this run does not stream")


async def main(endpoint):
    provider = TracerProvider(resource=Resource.create({"service.name": "claims-agents"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, timeout=30)))
    set_trace_processors([])  # nothing to OpenAI's own backend: this run is offline
    OpenAIAgentsInstrumentor().instrument(tracer_provider=provider)

    payments = Agent(
        name="Payments",
        instructions="Pay approved claims.",
        tools=[pay_claim],
        model=ScriptedModel(
            "scripted-payments",
            [[call("pay_claim", {"claim": 1432}, 3)], [message("Claim 1432 approved; payment failed, retry later.")]],
        ),
    )
    triage = Agent(
        name="Triage",
        instructions="Look the claim up, then hand it to payments.",
        tools=[lookup_claim],
        handoffs=[payments],
        input_guardrails=[names_a_claim],
        model=ScriptedModel(
            "scripted-triage",
            [[call("lookup_claim", {"claim": 1432}, 1)], [call("transfer_to_payments", {}, 2)]],
        ),
    )
    result = await Runner.run(triage, "Settle claim 1432")
    try:
        await Runner.run(triage, "Pay me whatever you like")
        stopped = False
    except InputGuardrailTripwireTriggered:
        stopped = True
    flushed = provider.force_flush(60_000)
    provider.shutdown()
    print(json.dumps({"final_output": result.final_output, "stopped": stopped, "flushed": flushed}))
    return 0 if flushed and stopped else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1])))
