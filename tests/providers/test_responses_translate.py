"""Responses API <-> chat translation (used for non-OpenAI upstreams): golden files, 400s."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.providers._golden import cases, check

from tollhouse.errors import InvalidRequest
from tollhouse.providers._responses_format import responses_to_chat
from tollhouse.providers._responses_stream import ChatToResponses


@pytest.mark.parametrize("path", cases("responses_"), ids=lambda p: Path(p).stem)
def test_golden(path: Path) -> None:
    check(path)


@pytest.mark.parametrize(
    "body",
    [
        {"input": "x"},
        {"model": "m"},
        {"model": "m", "input": []},
        {"model": "m", "input": "x", "previous_response_id": "resp_1"},
        {"model": "m", "input": "x", "background": True},
        {"model": "m", "input": "x", "tools": [{"type": "web_search"}]},
        {"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]},
        {"model": "m", "input": [{"role": "user", "content": [{"type": "input_image"}]}]},
        {"model": "m", "input": [{"role": "tool", "content": "x"}]},
        {"model": "m", "input": "x", "text": {"format": {"type": "xml"}}},
        {"model": "m", "input": "x", "tool_choice": {"type": "mcp"}},
        {"model": "m", "input": "x", "unheard_of": 1},
    ],
)
def test_requests_chat_cannot_carry_are_invalid_request(body: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest) as info:
        responses_to_chat(body)
    assert info.value.status == 400


def test_stream_sequence_numbers_increase_and_end_with_usage() -> None:
    t = ChatToResponses(id_="resp_1", model="m", created=0, request={"model": "m", "input": "x"})
    events = t.feed(
        {"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "length"}]}
    )
    events += t.feed({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}})
    events += t.finish()
    assert [d["sequence_number"] for _, d in events] == list(range(len(events)))
    name, last = events[-1]
    assert name == "response.incomplete"
    assert last["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert last["response"]["usage"]["total_tokens"] == 4
    assert last["response"]["output"][0]["content"][0]["text"] == "hi"
    assert t.finish() == []


def test_failed_stream_event() -> None:
    t = ChatToResponses(id_="resp_1", model="m", created=0, request={})
    names = [n for n, _ in t.failed("upstream went away")]
    assert names == ["response.created", "response.in_progress", "response.failed"]
