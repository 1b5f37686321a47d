"""Pieces of the OpenAI chat format shared by the translators (Anthropic, Gemini, Responses).

Everything here is a plain function over ``dict`` bodies parsed once by orjson; the
translators build new dicts and never re-serialise on the way.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Container, Mapping
from typing import Any

import orjson

from tollhouse.errors import InvalidRequest

# Request fields that steer the gateway itself (routing, sessions, tracing); they never
# reach a provider, so translators neither forward nor reject them.
GATEWAY_FIELDS = frozenset(
    {"models", "provider", "session_id", "trace", "plugins", "route", "transforms", "debug"}
)


# Chat fields that neither Anthropic nor Gemini can honour: accepted (and not sent) while
# they hold one of these neutral values.
UNTRANSLATED: dict[str, tuple[Any, ...]] = {
    "logprobs": (None, False),
    "top_logprobs": (None, 0),
    "logit_bias": (None, {}),
    "modalities": (None, ["text"]),
    "audio": (None,),
    "prediction": (None,),
    "reasoning_effort": (None,),
    "web_search_options": (None,),
    "functions": (None, []),
    "function_call": (None,),
}


def reject(param: str, provider: str, why: str = "is not supported") -> InvalidRequest:
    """The 400 for a parameter the target provider cannot honour."""
    return InvalidRequest(
        f"parameter '{param}' {why} by {provider} models; remove it from the request",
        extra={"param": param},
    )


def check_fields(
    body: dict[str, Any],
    known: Container[str],
    neutral: Mapping[str, tuple[Any, ...]],
    who: str,
    *,
    drop: bool,
    why: str = "",
) -> None:
    """Each request field is one the translator handles (``known``, or a gateway field),
    holds its neutral value, or is dropped (``drop_unsupported``); any other is a 400
    naming it (``why`` ends the reason)."""
    for key in body:
        if key in known or key in GATEWAY_FIELDS:
            continue
        if key in neutral and body[key] in neutral[key]:
            continue
        if not drop:
            reason = "is not supported" if key in neutral else "is not recognised"
            raise reject(key, who, reason + why)


def expect(cond: bool, message: str, param: str | None = None) -> None:
    if not cond:
        raise InvalidRequest(message, extra={"param": param} if param else None)


def as_list(value: Any, param: str) -> list[Any]:
    expect(isinstance(value, list), f"'{param}' must be an array", param)
    return value  # type: ignore[no-any-return]


def as_dict(value: Any, param: str) -> dict[str, Any]:
    expect(isinstance(value, dict), f"'{param}' must be an object", param)
    return value  # type: ignore[no-any-return]


def split_data_url(url: str, param: str) -> tuple[str, str] | None:
    """``data:image/png;base64,AAAA`` -> ``("image/png", "AAAA")``; None for other URLs."""
    if not url.startswith("data:"):
        return None
    head, sep, data = url[5:].partition(",")
    expect(bool(sep) and head.endswith(";base64"), f"'{param}': data URLs must be base64", param)
    media = head[: -len(";base64")] or "application/octet-stream"
    try:
        base64.b64decode(data[:64] + "=" * (-len(data[:64]) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"'{param}': invalid base64 data", extra={"param": param}) from None
    return media, data


def part_url(part: dict[str, Any], where: str) -> str:
    """The URL (or data URL) of an ``image_url`` or ``file`` content part."""
    if part.get("type") == "file":
        f = as_dict(part.get("file"), f"{where}.file")
        url = f.get("file_data")
        if not isinstance(url, str) and f.get("file_id") is not None:
            raise InvalidRequest(
                f"'{where}.file.file_id': uploaded files cannot be forwarded; send file_data",
                extra={"param": where},
            )
    else:
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise InvalidRequest(f"'{where}' needs a URL or data URL", extra={"param": where})
    return url


def text_of(content: Any, param: str) -> str:
    """The text of a content that may only hold text (system prompts, tool results)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = as_list(content, param)
    out = []
    for i, part in enumerate(parts):
        part = as_dict(part, f"{param}[{i}]")
        expect(
            part.get("type") in ("text", "input_text", "output_text")
            and isinstance(part.get("text"), str),
            f"'{param}[{i}]' must be a text part",
            param,
        )
        out.append(part["text"])
    return "".join(out)


def parse_arguments(arguments: Any, param: str) -> Any:
    """Tool-call arguments: a JSON string in OpenAI format, an object elsewhere."""
    if isinstance(arguments, dict):
        return arguments
    if arguments is None or arguments == "":
        return {}
    expect(isinstance(arguments, str), f"'{param}' must be a JSON string", param)
    try:
        return orjson.loads(arguments)
    except orjson.JSONDecodeError:
        raise InvalidRequest(f"'{param}' is not valid JSON", extra={"param": param}) from None


def dump_arguments(args: Any) -> str:
    return orjson.dumps(args if args is not None else {}).decode()


def function_tool(raw: Any, i: int, provider: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``tools[i]`` of a chat request as (the tool, its function); only function tools with
    a name reach a translator."""
    where = f"tools[{i}]"
    t = as_dict(raw, where)
    if t.get("type") != "function":
        raise reject(f"{where}.type '{t.get('type')}'", provider)
    fn = as_dict(t.get("function"), f"{where}.function")
    expect(isinstance(fn.get("name"), str), f"'{where}.function.name' is required", where)
    return t, fn


def named_function(choice: Any) -> str | None:
    """The function a chat ``tool_choice`` object names, or None."""
    if isinstance(choice, dict) and isinstance((choice.get("function") or {}).get("name"), str):
        return str(choice["function"]["name"])
    return None


def bad_tool_choice() -> InvalidRequest:
    return InvalidRequest(
        "'tool_choice' is not a valid tool choice", extra={"param": "tool_choice"}
    )


def assistant_calls(
    m: dict[str, Any], where: str, *, require_id: bool = False
) -> list[tuple[Any, str, Any]]:
    """(id, function name, parsed arguments) of an assistant message's ``tool_calls``."""
    out: list[tuple[Any, str, Any]] = []
    for j, raw in enumerate(as_list(m.get("tool_calls") or [], f"{where}.tool_calls")):
        cw = f"{where}.tool_calls[{j}]"
        call = as_dict(raw, cw)
        fn = as_dict(call.get("function"), f"{cw}.function")
        if require_id:
            expect(isinstance(call.get("id"), str), f"'{cw}.id' is required", cw)
        expect(isinstance(fn.get("name"), str), f"'{cw}.function.name' is required", cw)
        args = parse_arguments(fn.get("arguments"), f"{cw}.function.arguments")
        out.append((call.get("id"), fn["name"], args))
    return out


def stop_sequences(stop: Any) -> list[Any]:
    """A chat ``stop`` (a string or an array of them) as a list."""
    return [stop] if isinstance(stop, str) else as_list(stop, "stop")


def add_turn(turns: list[dict[str, Any]], role: str, key: str, items: list[Any]) -> None:
    """Append a turn, merged into the previous one when the role repeats (Anthropic and
    Gemini want user and assistant turns to alternate)."""
    if turns and turns[-1]["role"] == role:
        turns[-1][key].extend(items)
    else:
        turns.append({"role": role, key: items})


def tool_call(id_: Any, name: Any, arguments: str) -> dict[str, Any]:
    """One entry of a chat message's ``tool_calls``."""
    return {"id": id_, "type": "function", "function": {"name": name, "arguments": arguments}}


def assistant_message(
    text: list[str], reasoning: list[str], calls: list[dict[str, Any]]
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text else None}
    if reasoning:
        message["reasoning"] = "".join(reasoning)
    if calls:
        message["tool_calls"] = calls
    return message


def completion(
    id_: Any, model: Any, created: int, choices: list[dict[str, Any]], usage: dict[str, Any]
) -> dict[str, Any]:
    """A chat completion; ``choices`` built by ``chat_choice``."""
    return {
        "id": id_,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": usage,
    }


def chat_choice(index: Any, message: dict[str, Any], finish: str) -> dict[str, Any]:
    return {"index": index, "message": message, "finish_reason": finish, "logprobs": None}


def chat_request(body: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The start of a chat request translated from another format (Messages, Responses):
    the client's model, the messages and the gateway's own fields, which stay."""
    out: dict[str, Any] = {"model": body["model"], "messages": messages}
    for key in GATEWAY_FIELDS:
        if key in body:
            out[key] = body[key]
    return out


def copy_set(body: dict[str, Any], out: dict[str, Any], keys: tuple[str, ...]) -> None:
    """Copy the fields named in ``keys`` that ``body`` sets (not None) into ``out``."""
    for key in keys:
        if body.get(key) is not None:
            out[key] = body[key]


def stream_with_usage(body: dict[str, Any], out: dict[str, Any]) -> None:
    """A streamed request asks the chat upstream for its usage chunk (spend needs it)."""
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}


def chat_usage(
    prompt: int,
    completion: int,
    *,
    cached: int = 0,
    cache_write: int = 0,
    reasoning: int = 0,
) -> dict[str, Any]:
    """OpenAI usage; ``prompt`` already includes cached and cache-write tokens."""
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if cached or cache_write:
        usage["prompt_tokens_details"] = {
            "cached_tokens": cached,
            "cache_write_tokens": cache_write,
        }
    if reasoning:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return usage


def usage_parts(usage: Any) -> tuple[int, int, int, int, int]:
    """(prompt, completion, cached, cache_write, reasoning) from an OpenAI usage object."""
    if not isinstance(usage, dict):
        return 0, 0, 0, 0, 0
    details = usage.get("prompt_tokens_details") or {}
    cdetails = usage.get("completion_tokens_details") or {}
    return (
        _int(usage.get("prompt_tokens")),
        _int(usage.get("completion_tokens")),
        _int(details.get("cached_tokens")) if isinstance(details, dict) else 0,
        _int(details.get("cache_write_tokens")) if isinstance(details, dict) else 0,
        _int(cdetails.get("reasoning_tokens")) if isinstance(cdetails, dict) else 0,
    )


def _int(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def chunk(
    id_: str, model: str, created: int, delta: dict[str, Any], finish: str | None = None
) -> dict[str, Any]:
    return {
        "id": id_,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def usage_chunk(id_: str, model: str, created: int, usage: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": id_,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage,
    }


def first_choice(data: dict[str, Any]) -> list[tuple[dict[str, Any], Any]]:
    """(delta, finish_reason) of choice 0 in a chat chunk: a translated stream answers one
    choice (Messages and Responses have no ``n``)."""
    return [
        (c.get("delta") or {}, c.get("finish_reason"))
        for c in data.get("choices") or []
        if c.get("index", 0) == 0
    ]


def now() -> int:
    return int(time.time())
