"""Property: chat -> Anthropic -> chat keeps any well-formed conversation intact."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from tollhouse.providers._anthropic_format import chat_to_anthropic, messages_to_chat

text = st.text(min_size=1, max_size=20)
args = st.dictionaries(
    st.text(min_size=1, max_size=5), st.integers(-(2**53), 2**53) | st.text(max_size=5), max_size=3
)
image = st.sampled_from(["https://example.com/a.png", "data:image/png;base64,iVBORw0KGgo="])
user_part = st.one_of(
    text.map(lambda t: {"type": "text", "text": t}),
    image.map(lambda u: {"type": "image_url", "image_url": {"url": u}}),
)
user = st.one_of(text, st.lists(user_part, min_size=1, max_size=3)).map(
    lambda c: {"role": "user", "content": c}
)


@st.composite
def turn(draw: st.DrawFn, n: int) -> list[dict[str, Any]]:
    """One assistant turn: text, or tool calls followed by their results."""
    calls = draw(st.lists(st.tuples(text, args), max_size=2))
    content = draw(text) if not calls or draw(st.booleans()) else None
    msg: dict[str, Any] = {"role": "assistant", "content": content}
    if not calls:
        return [msg]
    msg["tool_calls"] = [
        {
            "id": f"call_{n}_{i}",
            "type": "function",
            "function": {"name": name, "arguments": orjson.dumps(a).decode()},
        }
        for i, (name, a) in enumerate(calls)
    ]
    results = [
        {"role": "tool", "tool_call_id": c["id"], "content": draw(text)} for c in msg["tool_calls"]
    ]
    return [msg, *results]


@st.composite
def conversation(draw: st.DrawFn) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if draw(st.booleans()):
        out.append({"role": "system", "content": draw(text)})
    out.append(draw(user))
    for n in range(draw(st.integers(0, 3))):
        out += draw(turn(n))
        out.append(draw(user))
    return out


def _normal(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """User text as parts, so a merged tool-result turn compares equal."""
    out = []
    for m in messages:
        if m["role"] == "user" and isinstance(m["content"], str):
            m = {**m, "content": [{"type": "text", "text": m["content"]}]}
        out.append(m)
    return out


@settings(max_examples=150, deadline=None)
@given(conversation())
def test_round_trip(messages: list[dict[str, Any]]) -> None:
    back = messages_to_chat(chat_to_anthropic({"messages": messages}, model="m"))
    assert _normal(back["messages"]) == _normal(messages)
