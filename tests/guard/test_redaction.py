"""Request redaction: which leaves of a body are scanned, modes, presets, per-key modes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tollhouse.errors import ConfigError
from tollhouse.guard.presets import PRESETS, preset_of
from tollhouse.guard.redaction import RequestRedactor, message_groups, request_text
from tollhouse.store.base import KeyRecord

EMAIL = "bob.smith@example.com"
OPENAI = "sk-proj-" + "a1B2c3D4e5F6g7H8i9J0" * 2
CARD = "4111 1111 1111 1111"
AWS = "AKIAIOSFODNN7EXAMPLE"


def key(**metadata: Any) -> KeyRecord:
    return KeyRecord("h", "k", "gk_…", 0.0, 0.0, metadata=metadata)


def strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for v in node.values() for s in strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in strings(v)]
    return []


def run(body: dict[str, Any], preset: str = "standard", **section: Any) -> Any:
    red = RequestRedactor(section)
    return red.apply(message_groups(body), PRESETS[preset], red.modes)


def test_chat_content_parts_tool_calls_and_results() -> None:
    body: dict[str, Any] = {
        "model": "m",
        "messages": [
            {"role": "system", "content": f"operator {EMAIL}"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "key " + AWS[:10]},
                    {"type": "text", "text": AWS[10:] + " done"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUtJQQ=="}},
                ],
            },
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "pay", "arguments": f'{{"card": "{CARD}"}}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": f"charged, key {OPENAI}"},
        ],
    }
    out = run(body)
    assert out.count == 4 and out.families == {
        "EMAIL",
        "AWS_ACCESS_KEY",
        "CREDIT_CARD",
        "OPENAI_KEY",
    }
    text = "\n".join(strings(body))
    for secret in (EMAIL, AWS, AWS[10:], CARD, OPENAI):
        assert secret not in text
    assert "[REDACTED:AWS_ACCESS_KEY]" in body["messages"][1]["content"][0]["text"]
    assert body["messages"][1]["content"][1]["text"] == " done"
    assert (
        body["messages"][3]["tool_call_id"] == "call_1" and body["messages"][0]["role"] == "system"
    )
    assert body["messages"][1]["content"][2]["image_url"]["url"].startswith("data:")


def test_anthropic_and_responses_shapes() -> None:
    anthropic: dict[str, Any] = {
        "model": "claude",
        "system": [{"type": "text", "text": f"mail {EMAIL}"}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": f"ssn 123-45-6789 {CARD}",
                    },
                    {"type": "tool_use", "id": "t2", "name": "f", "input": {"key": OPENAI}},
                ],
            }
        ],
    }
    assert run(anthropic).count == 4
    assert (
        EMAIL not in str(anthropic) and OPENAI not in str(anthropic) and CARD not in str(anthropic)
    )
    responses: dict[str, Any] = {
        "model": "m",
        "instructions": f"contact {EMAIL}",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": f"card {CARD}"}]},
            {"type": "function_call_output", "call_id": "c", "output": OPENAI},
        ],
    }
    assert run(responses).count == 3
    assert responses["input"][1]["call_id"] == "c" and OPENAI not in str(responses)
    embeddings: dict[str, Any] = {"model": "e", "input": [f"a {EMAIL}", "clean"]}
    assert run(embeddings).count == 1 and embeddings["input"][1] == "clean"


def test_clean_body_untouched_and_text_joined() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hello world"}], "x": EMAIL}
    before = copy.deepcopy(body)
    out = run(body)
    assert out.count == 0 and body == before  # fields outside the text roots are not read
    assert request_text(message_groups(body)) == "hello world"


def test_modes_hash_block_and_key_overrides() -> None:
    red = RequestRedactor({"modes": {"EMAIL": "hash", "default": "mask"}, "hash_salt": "s"})
    body = {"messages": [{"role": "user", "content": f"{EMAIL} {OPENAI}"}]}
    out = red.apply(message_groups(body), PRESETS["standard"], red.modes_for(key()))
    content = body["messages"][0]["content"]
    assert content.startswith("[REDACTED:EMAIL:") and "[REDACTED:OPENAI_KEY]" in content
    assert not out.blocked
    body = {"messages": [{"role": "user", "content": f"{EMAIL} {OPENAI}"}]}
    modes = red.modes_for(key(redaction={"OPENAI_KEY": "block"}))
    out = red.apply(message_groups(body), PRESETS["standard"], modes)
    assert out.blocked == ["OPENAI_KEY"]
    # a broken per-key override falls back to the configured modes
    assert red.modes_for(key(redaction={"EMAIL": "shred"})) == red.modes


def test_relaxed_preset_only_personal_data() -> None:
    body = {"messages": [{"role": "user", "content": f"{EMAIL} {OPENAI}"}]}
    out = run(body, "relaxed")
    assert out.families == {"EMAIL"} and OPENAI in body["messages"][0]["content"]


def test_custom_patterns_and_bad_config() -> None:
    body = {"messages": [{"role": "user", "content": "employee EMP-123456 here"}]}
    out = run(body, custom=[{"name": "employee_id", "pattern": "EMP-[0-9]{6}"}])
    assert out.families == {"EMPLOYEE_ID"}
    with pytest.raises(ConfigError):
        RequestRedactor({"custom": [{"name": "X", "pattern": "("}]})
    with pytest.raises(ConfigError):
        RequestRedactor({"modes": {"EMAIL": "shred"}})
    with pytest.raises(ConfigError):
        RequestRedactor({"custom": ["nope"]})


def test_keys_without_preset_get_standard() -> None:
    assert preset_of(None).id == "standard"
    assert preset_of(key()).id == "standard"
    assert preset_of(key(preset="strict")).id == "strict"
    assert preset_of(key(preset="bogus")).id == "standard"
