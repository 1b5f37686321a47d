"""OpenAI chat <-> Gemini generateContent translation: golden files and the 400s."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.providers._golden import cases, check

from tollhouse.errors import InvalidRequest, ProviderError
from tollhouse.providers._gemini_format import SIG_SEP, chat_to_gemini, gemini_to_chat
from tollhouse.providers._gemini_stream import GeminiToChat


@pytest.mark.parametrize("path", cases("gemini_"), ids=lambda p: Path(p).stem)
def test_golden(path: Path) -> None:
    check(path)


def _chat(**extra: Any) -> dict[str, Any]:
    return {"model": "g", "messages": [{"role": "user", "content": "hi"}], **extra}


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"logprobs": True}, "logprobs"),
        ({"logit_bias": {"1": 1}}, "logit_bias"),
        ({"parallel_tool_calls": False}, "parallel_tool_calls"),
        ({"brand_new": True}, "brand_new"),
    ],
)
def test_unsupported_parameters_are_a_clear_400(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        chat_to_gemini(_chat(**extra))
    assert param in info.value.message
    assert info.value.status == 400


def test_tool_result_for_an_unknown_call_is_rejected() -> None:
    body = _chat(messages=[{"role": "tool", "tool_call_id": "nope", "content": "x"}])
    with pytest.raises(InvalidRequest, match="no earlier tool call"):
        chat_to_gemini(body)


def test_thought_signature_survives_a_round_trip() -> None:
    resp = {
        "candidates": [
            {
                "content": {
                    "parts": [{"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "S1"}]
                },
                "finishReason": "STOP",
            }
        ],
        "responseId": "r",
    }
    message = gemini_to_chat(resp, model="g", created=0)["choices"][0]["message"]
    call_id = message["tool_calls"][0]["id"]
    assert call_id.endswith(SIG_SEP + "S1")
    req = chat_to_gemini(
        _chat(
            messages=[
                {"role": "user", "content": "go"},
                message,
                {"role": "tool", "tool_call_id": call_id, "content": "done"},
            ]
        )
    )
    assert req["contents"][1]["parts"][0]["thoughtSignature"] == "S1"
    assert req["contents"][2]["parts"][0]["functionResponse"]["name"] == "f"


@pytest.mark.parametrize(
    ("reason", "finish"),
    [("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("OTHER", "stop")],
)
def test_finish_reasons(reason: str, finish: str) -> None:
    resp = {"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": reason}]}
    assert gemini_to_chat(resp, model="g", created=0)["choices"][0]["finish_reason"] == finish


def test_stream_error_payload_raises_provider_error() -> None:
    t = GeminiToChat(id_="c", model="g", created=0)
    with pytest.raises(ProviderError, match="RESOURCE_EXHAUSTED"):
        t.feed({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "quota"}})


def test_json_object_response_format_and_invalid_type() -> None:
    out = chat_to_gemini(_chat(response_format={"type": "json_object"}))
    assert out["generationConfig"] == {"responseMimeType": "application/json"}
    with pytest.raises(InvalidRequest):
        chat_to_gemini(_chat(response_format={"type": "yaml"}))
