"""OpenAI chat <-> Anthropic Messages, non-streaming bodies, both directions.

Outbound (the ``anthropic`` adapter): ``chat_to_anthropic`` builds a Messages request from
a chat request and ``anthropic_to_chat`` turns the answer back into a chat completion.
Inbound (``POST /v1/messages``): ``messages_to_chat`` and ``chat_to_messages_response``
do the reverse, so an Anthropic client can reach any provider.

A parameter the target cannot honour is a 400 ``invalid_request`` naming it, unless it
holds its neutral value (``n: 1``, ``presence_penalty: 0`` ...) or the provider is
configured with ``drop_unsupported``.
"""

from __future__ import annotations

from typing import Any

from tollhouse.errors import InvalidRequest
from tollhouse.providers._chat_shape import (
    UNTRANSLATED,
    add_turn,
    as_dict,
    as_list,
    assistant_calls,
    assistant_message,
    bad_tool_choice,
    chat_choice,
    chat_request,
    chat_usage,
    check_fields,
    completion,
    copy_set,
    dump_arguments,
    expect,
    function_tool,
    named_function,
    parse_arguments,
    part_url,
    reject,
    split_data_url,
    stop_sequences,
    stream_with_usage,
    text_of,
    tool_call,
    usage_parts,
)

PROVIDER = "anthropic"
DEFAULT_MAX_TOKENS = 4096

STOP_TO_CHAT = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
CHAT_TO_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

# chat fields accepted when they hold one of these neutral values
_NEUTRAL: dict[str, tuple[Any, ...]] = {
    **UNTRANSLATED,
    "n": (None, 1),
    "frequency_penalty": (None, 0),
    "presence_penalty": (None, 0),
    "seed": (None,),
    "response_format": (None, {"type": "text"}),
}
# chat fields that mean nothing to Anthropic and are safely ignored
_IGNORED = frozenset({"model", "stream_options", "store", "metadata", "service_tier"})


# -- outbound: chat request -> Messages request ----------------------------------------------


def chat_to_anthropic(
    body: dict[str, Any],
    *,
    model: str,
    default_max_tokens: int = DEFAULT_MAX_TOKENS,
    drop_unsupported: bool = False,
) -> dict[str, Any]:
    """A Messages API request body for ``model`` from an OpenAI chat request body."""
    system, messages = _chat_messages(as_list(body.get("messages"), "messages"))
    out: dict[str, Any] = {"model": model, "messages": messages}
    if system:
        out["system"] = system
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is None:
        max_tokens = default_max_tokens
    expect(
        isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and max_tokens > 0,
        "'max_tokens' must be a positive integer",
        "max_tokens",
    )
    out["max_tokens"] = max_tokens
    check_fields(body, _KNOWN, _NEUTRAL, PROVIDER, drop=drop_unsupported)
    for key in body:
        if key in _PASSTHROUGH:
            out[key] = body[key]
    copy_set(body, out, ("temperature", "top_p"))
    stop = body.get("stop")
    if stop is not None:
        out["stop_sequences"] = stop_sequences(stop)
    if body.get("stream"):
        out["stream"] = True
    user = body.get("user")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    tools = body.get("tools")
    if tools:
        out["tools"] = [_tool(t, i) for i, t in enumerate(as_list(tools, "tools"))]
    choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
    if choice is not None:
        out["tool_choice"] = choice
    return out


_HANDLED = frozenset(
    {
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "stream",
        "user",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
    }
)
# Anthropic-native fields a chat client may add on purpose
_PASSTHROUGH = frozenset({"top_k", "thinking"})
_KNOWN = _HANDLED | _IGNORED | _PASSTHROUGH


def _chat_messages(msgs: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for i, raw in enumerate(msgs):
        where = f"messages[{i}]"
        m = as_dict(raw, where)
        role = m.get("role")
        content = m.get("content")
        if role in ("system", "developer"):
            system.extend(_text_blocks(content, f"{where}.content"))
            continue
        if role == "user":
            blocks = _user_blocks(content, f"{where}.content")
        elif role == "assistant":
            role, blocks = "assistant", _assistant_blocks(m, where)
        elif role == "tool":
            role, blocks = "user", [_tool_result(m, where)]
        elif role == "function":
            raise reject(f"{where}.role 'function'", PROVIDER, "(deprecated) is not supported")
        else:
            raise InvalidRequest(f"'{where}.role' must be system, user, assistant or tool")
        if blocks:
            add_turn(out, role, "content", blocks)
    for m in out:
        c = m["content"]
        if len(c) == 1 and c[0].keys() == {"type", "text"}:
            m["content"] = c[0]["text"]
    expect(bool(out), "'messages' must hold at least one user or assistant message", "messages")
    return system, out


def _text_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for i, part in enumerate(as_list(content, where)):
        part = as_dict(part, f"{where}[{i}]")
        expect(part.get("type") == "text", f"'{where}[{i}]' must be a text part", where)
        block: dict[str, Any] = {"type": "text", "text": text_of([part], where)}
        if part.get("cache_control"):
            block["cache_control"] = part["cache_control"]
        blocks.append(block)
    return blocks


def _user_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    blocks: list[dict[str, Any]] = []
    for i, raw in enumerate(as_list(content, where)):
        pw = f"{where}[{i}]"
        part = as_dict(raw, pw)
        kind = part.get("type")
        if kind == "text":
            block: dict[str, Any] = {"type": "text", "text": text_of([part], pw)}
        elif kind == "image_url":
            url = part_url(part, pw)
            inline = split_data_url(url, pw)
            source: dict[str, Any] = (
                {"type": "base64", "media_type": inline[0], "data": inline[1]}
                if inline
                else {"type": "url", "url": url}
            )
            block = {"type": "image", "source": source}
        elif kind == "file":
            inline = split_data_url(part_url(part, pw), pw)
            if inline is None:
                raise reject(f"{pw}.file.file_data (a plain URL)", PROVIDER)
            block = {
                "type": "document",
                "source": {"type": "base64", "media_type": inline[0], "data": inline[1]},
            }
        else:
            raise reject(f"{pw}.type '{kind}'", PROVIDER)
        if part.get("cache_control"):
            block["cache_control"] = part["cache_control"]
        blocks.append(block)
    return blocks


def _assistant_blocks(m: dict[str, Any], where: str) -> list[dict[str, Any]]:
    content = m.get("content")
    blocks: list[dict[str, Any]] = []
    if isinstance(content, list):
        for i, part in enumerate(content):
            part = as_dict(part, f"{where}.content[{i}]")
            if part.get("type") == "refusal":
                continue
            blocks.extend(_text_blocks([part], f"{where}.content"))
    elif content:
        blocks.extend(_text_blocks(content, f"{where}.content"))
    for call_id, name, args in assistant_calls(m, where, require_id=True):
        blocks.append({"type": "tool_use", "id": call_id, "name": name, "input": args})
    return blocks


def _tool_result(m: dict[str, Any], where: str) -> dict[str, Any]:
    call_id = m.get("tool_call_id")
    expect(isinstance(call_id, str) and bool(call_id), f"'{where}.tool_call_id' is required", where)
    return {
        "type": "tool_result",
        "tool_use_id": call_id,
        "content": text_of(m.get("content"), f"{where}.content"),
    }


def _tool(raw: Any, i: int) -> dict[str, Any]:
    t, fn = function_tool(raw, i, PROVIDER)
    tool: dict[str, Any] = {
        "name": fn["name"],
        "input_schema": fn.get("parameters") or {"type": "object", "properties": {}},
    }
    if fn.get("description"):
        tool["description"] = fn["description"]
    if t.get("cache_control"):
        tool["cache_control"] = t["cache_control"]
    return tool


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    out: dict[str, Any] | None
    if choice is None:
        out = None if parallel is not False else {"type": "auto"}
    elif choice == "auto":
        out = {"type": "auto"}
    elif choice == "required":
        out = {"type": "any"}
    elif choice == "none":
        return {"type": "none"}
    elif (name := named_function(choice)) is not None:
        out = {"type": "tool", "name": name}
    else:
        raise bad_tool_choice()
    if out is not None and parallel is False:
        out["disable_parallel_tool_use"] = True
    return out


# -- outbound: Messages response -> chat completion --------------------------------------------


def anthropic_usage(usage: Any) -> dict[str, Any]:
    """Anthropic usage -> OpenAI usage (``input_tokens`` excludes cache reads and writes)."""
    u = usage if isinstance(usage, dict) else {}
    read = u.get("cache_read_input_tokens") or 0
    write = u.get("cache_creation_input_tokens") or 0
    prompt = (u.get("input_tokens") or 0) + read + write
    return chat_usage(prompt, u.get("output_tokens") or 0, cached=read, cache_write=write)


def anthropic_to_chat(
    resp: dict[str, Any], *, created: int, model: str | None = None
) -> dict[str, Any]:
    text: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in resp.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            text.append(block.get("text", ""))
        elif kind == "thinking":
            reasoning.append(block.get("thinking", ""))
        elif kind == "tool_use":
            args = dump_arguments(block.get("input"))
            calls.append(tool_call(block.get("id"), block.get("name"), args))
    message = assistant_message(text, reasoning, calls)
    finish = STOP_TO_CHAT.get(resp.get("stop_reason") or "end_turn", "stop")
    return completion(
        resp.get("id"),
        model or resp.get("model"),
        created,
        [chat_choice(0, message, finish)],
        anthropic_usage(resp.get("usage")),
    )


# -- inbound: Messages request -> chat request ---------------------------------------------------

_MESSAGES_NEUTRAL: dict[str, tuple[Any, ...]] = {
    "thinking": (None, {"type": "disabled"}),
    "service_tier": (None, "auto", "standard_only"),
    "cache_control": (None,),
    "context_management": (None,),
    "container": (None,),
    "mcp_servers": (None, []),
    "speed": (None, "standard"),
}
_MESSAGES_HANDLED = frozenset(
    {
        "model",
        "messages",
        "system",
        "max_tokens",
        "metadata",
        "stop_sequences",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "stream",
        "output_config",
    }
)


def messages_to_chat(body: dict[str, Any], *, drop_unsupported: bool = False) -> dict[str, Any]:
    """An OpenAI chat request from an Anthropic Messages request (``POST /v1/messages``)."""
    expect(
        isinstance(body.get("model"), str) and bool(body["model"]), "'model' is required", "model"
    )
    check_fields(
        body,
        _MESSAGES_HANDLED,
        _MESSAGES_NEUTRAL,
        "this gateway's",
        drop=drop_unsupported,
        why=" for Messages requests",
    )
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        messages.append({"role": "system", "content": text_of(system, "system")})
    for i, raw in enumerate(as_list(body.get("messages"), "messages")):
        messages.extend(_anthropic_message(as_dict(raw, f"messages[{i}]"), f"messages[{i}]"))
    out = chat_request(body, messages)
    copy_set(body, out, ("max_tokens", "temperature", "top_p", "top_k"))
    if body.get("stop_sequences"):
        out["stop"] = as_list(body["stop_sequences"], "stop_sequences")
    user = (
        (body.get("metadata") or {}).get("user_id")
        if isinstance(body.get("metadata"), dict)
        else None
    )
    if isinstance(user, str) and user:
        out["user"] = user
    stream_with_usage(body, out)
    if body.get("tools"):
        out["tools"] = [_chat_tool(t, i) for i, t in enumerate(as_list(body["tools"], "tools"))]
    choice = body.get("tool_choice")
    if choice is not None:
        choice = as_dict(choice, "tool_choice")
        kind = choice.get("type")
        mapped = {"auto": "auto", "any": "required", "none": "none"}.get(str(kind))
        if kind == "tool":
            expect(
                isinstance(choice.get("name"), str), "'tool_choice.name' is required", "tool_choice"
            )
            out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
        elif mapped:
            out["tool_choice"] = mapped
        else:
            raise InvalidRequest("'tool_choice.type' must be auto, any, tool or none")
        if choice.get("disable_parallel_tool_use"):
            out["parallel_tool_calls"] = False
    config = body.get("output_config")
    if config:
        config = as_dict(config, "output_config")
        fmt = config.get("format")
        if fmt:
            fmt = as_dict(fmt, "output_config.format")
            expect(
                fmt.get("type") == "json_schema", "'output_config.format.type' must be json_schema"
            )
            out["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": fmt.get("schema") or {}},
            }
        if config.get("effort"):
            out["reasoning_effort"] = config["effort"]
    return out


def _anthropic_message(m: dict[str, Any], where: str) -> list[dict[str, Any]]:
    role = m.get("role")
    expect(role in ("user", "assistant"), f"'{where}.role' must be user or assistant", where)
    content = m.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    parts: list[dict[str, Any]] = []
    tools: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for i, raw in enumerate(as_list(content, f"{where}.content")):
        bw = f"{where}.content[{i}]"
        block = as_dict(raw, bw)
        kind = block.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": text_of([block], bw)})
        elif kind == "image" and role == "user":
            parts.append({"type": "image_url", "image_url": {"url": _source_url(block, bw)}})
        elif kind == "document" and role == "user":
            src = as_dict(block.get("source"), f"{bw}.source")
            if src.get("type") == "text":
                parts.append({"type": "text", "text": str(src.get("data", ""))})
            else:
                file: dict[str, Any] = {"file_data": _source_url(block, bw)}
                if isinstance(block.get("title"), str):
                    file["filename"] = block["title"]
                parts.append({"type": "file", "file": file})
        elif kind == "tool_result" and role == "user":
            expect(isinstance(block.get("tool_use_id"), str), f"'{bw}.tool_use_id' is required", bw)
            result = text_of(block.get("content"), f"{bw}.content")
            if block.get("is_error"):
                result = f"Error: {result}"
            tools.append({"role": "tool", "tool_call_id": block["tool_use_id"], "content": result})
        elif kind == "tool_use" and role == "assistant":
            expect(isinstance(block.get("id"), str), f"'{bw}.id' is required", bw)
            expect(isinstance(block.get("name"), str), f"'{bw}.name' is required", bw)
            calls.append(tool_call(block["id"], block["name"], dump_arguments(block.get("input"))))
        elif kind in ("thinking", "redacted_thinking") and role == "assistant":
            continue
        else:
            raise reject(
                f"{bw}.type '{kind}'", "this gateway's", "is not supported in this position"
            )
    out: list[dict[str, Any]] = list(tools)
    if role == "assistant":
        msg: dict[str, Any] = {"role": "assistant", "content": _join_text(parts)}
        if calls:
            msg["tool_calls"] = calls
        if msg["content"] is not None or calls:
            out.append(msg)
    elif parts:
        out.append({"role": "user", "content": parts})
    return out


def _join_text(parts: list[dict[str, Any]]) -> str | None:
    return "".join(p["text"] for p in parts) if parts else None


def _source_url(block: dict[str, Any], where: str) -> str:
    src = as_dict(block.get("source"), f"{where}.source")
    kind = src.get("type")
    if kind == "base64":
        expect(isinstance(src.get("data"), str), f"'{where}.source.data' is required", where)
        return f"data:{src.get('media_type') or 'application/octet-stream'};base64,{src['data']}"
    if kind == "url":
        expect(isinstance(src.get("url"), str), f"'{where}.source.url' is required", where)
        return str(src["url"])
    raise reject(f"{where}.source.type '{kind}'", "this gateway's")


def _chat_tool(raw: Any, i: int) -> dict[str, Any]:
    where = f"tools[{i}]"
    t = as_dict(raw, where)
    if t.get("type") not in (None, "custom"):
        raise reject(
            f"{where}.type '{t.get('type')}'", "this gateway's", "(a server tool) is not supported"
        )
    expect(isinstance(t.get("name"), str), f"'{where}.name' is required", where)
    fn: dict[str, Any] = {
        "name": t["name"],
        "parameters": t.get("input_schema") or {"type": "object", "properties": {}},
    }
    if t.get("description"):
        fn["description"] = t["description"]
    return {"type": "function", "function": fn}


# -- inbound: chat completion -> Messages response -----------------------------------------


def messages_usage(usage: Any) -> dict[str, Any]:
    prompt, completion, cached, write, _ = usage_parts(usage)
    return {
        "input_tokens": max(prompt - cached - write, 0),
        "output_tokens": completion,
        "cache_creation_input_tokens": write,
        "cache_read_input_tokens": cached,
    }


def chat_to_messages_response(resp: dict[str, Any], *, model: str) -> dict[str, Any]:
    choices = resp.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if message.get("reasoning"):
        content.append({"type": "thinking", "thinking": message["reasoning"], "signature": ""})
    text = message.get("content")
    if isinstance(text, list):
        text = "".join(p.get("text", "") for p in text if isinstance(p, dict))
    if text:
        content.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or []:
        fn = call.get("function") or {}
        try:
            args = parse_arguments(fn.get("arguments"), "arguments")
        except InvalidRequest:
            args = {}
        content.append(
            {"type": "tool_use", "id": call.get("id"), "name": fn.get("name"), "input": args}
        )
    finish = choice.get("finish_reason") or "stop"
    return {
        "id": resp.get("id"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": CHAT_TO_STOP.get(finish, "end_turn"),
        "stop_sequence": None,
        "usage": messages_usage(resp.get("usage")),
    }
