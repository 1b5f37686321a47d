"""OpenAI Responses API <-> chat completions, for upstreams that only speak chat.

``POST /v1/responses`` goes through untouched to OpenAI-family upstreams; for the others
the route turns the request into a chat request (``responses_to_chat``), calls the
provider, and builds a Response object (``chat_to_response``) or a Responses event
stream (``_responses_stream.ChatToResponses``) from the answer.  Tollhouse keeps no
conversation state, so ``previous_response_id`` and stored items are a 400 here.
"""

from __future__ import annotations

from typing import Any

from tollhouse.errors import InvalidRequest
from tollhouse.providers._chat_shape import (
    as_dict,
    as_list,
    chat_request,
    check_fields,
    copy_set,
    expect,
    reject,
    stream_with_usage,
    text_of,
    tool_call,
    usage_parts,
)

WHO = "this gateway's"
_NEUTRAL: dict[str, tuple[Any, ...]] = {
    "previous_response_id": (None,),
    "background": (None, False),
    "prompt": (None,),
    "conversation": (None,),
    "max_tool_calls": (None,),
    "top_logprobs": (None, 0),
    "include": (None, []),
}
_IGNORED = frozenset(
    {
        "model",
        "metadata",
        "store",
        "truncation",
        "service_tier",
        "prompt_cache_key",
        "stream_options",
    }
)
_HANDLED = frozenset(
    {
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "max_output_tokens",
        "temperature",
        "top_p",
        "top_k",
        "text",
        "reasoning",
        "stream",
        "user",
        "safety_identifier",
    }
)
_KNOWN = _HANDLED | _IGNORED


def responses_to_chat(body: dict[str, Any], *, drop_unsupported: bool = False) -> dict[str, Any]:
    """A chat request from a Responses request (for providers without a Responses API)."""
    model = body.get("model")
    expect(isinstance(model, str) and bool(model), "'model' is required", "model")
    check_fields(
        body,
        _KNOWN,
        _NEUTRAL,
        WHO,
        drop=drop_unsupported,
        why=" for Responses requests on this model",
    )
    messages: list[dict[str, Any]] = []
    if body.get("instructions"):
        messages.append(
            {"role": "system", "content": text_of(body["instructions"], "instructions")}
        )
    raw = body.get("input")
    if isinstance(raw, str):
        messages.append({"role": "user", "content": raw})
    else:
        for i, item in enumerate(as_list(raw, "input")):
            _item(as_dict(item, f"input[{i}]"), f"input[{i}]", messages)
    expect(len(messages) > 0, "'input' must not be empty", "input")
    out = chat_request(body, messages)
    copy_set(body, out, ("temperature", "top_p", "top_k", "parallel_tool_calls"))
    if body.get("max_output_tokens") is not None:
        out["max_tokens"] = body["max_output_tokens"]
    user = body.get("user") or body.get("safety_identifier")
    if isinstance(user, str) and user:
        out["user"] = user
    stream_with_usage(body, out)
    if body.get("tools"):
        out["tools"] = [_tool(t, i) for i, t in enumerate(as_list(body["tools"], "tools"))]
    if body.get("tool_choice") is not None:
        out["tool_choice"] = _tool_choice(body["tool_choice"])
    fmt = (as_dict(body["text"], "text").get("format") if body.get("text") else None) or None
    if fmt is not None:
        fmt = as_dict(fmt, "text.format")
        kind = fmt.get("type")
        if kind == "json_schema":
            schema: dict[str, Any] = {"name": fmt.get("name") or "output"}
            for key in ("schema", "strict", "description"):
                if key in fmt:
                    schema[key] = fmt[key]
            out["response_format"] = {"type": "json_schema", "json_schema": schema}
        elif kind == "json_object":
            out["response_format"] = {"type": "json_object"}
        elif kind != "text":
            raise InvalidRequest("'text.format.type' must be text, json_object or json_schema")
    reasoning = body.get("reasoning")
    if reasoning:
        effort = as_dict(reasoning, "reasoning").get("effort")
        if effort is not None:
            out["reasoning_effort"] = effort
    return out


def _item(item: dict[str, Any], where: str, messages: list[dict[str, Any]]) -> None:
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        expect(
            role in ("user", "system", "developer", "assistant"),
            f"'{where}.role' must be user, system, developer or assistant",
            where,
        )
        content = item.get("content")
        if isinstance(content, str) or role != "user":
            text = (
                _assistant_text(content, where) if role == "assistant" else text_of(content, where)
            )
            messages.append({"role": role, "content": text})
            return
        parts = [
            _part(as_dict(p, f"{where}.content[{j}]"), f"{where}.content[{j}]")
            for j, p in enumerate(as_list(content, f"{where}.content"))
        ]
        messages.append({"role": "user", "content": parts})
    elif kind == "function_call":
        for key in ("call_id", "name"):
            expect(isinstance(item.get(key), str), f"'{where}.{key}' is required", where)
        args = item.get("arguments")
        call = tool_call(item["call_id"], item["name"], args if isinstance(args, str) else "{}")
        last = messages[-1] if messages else None
        if last is not None and last["role"] == "assistant":
            last.setdefault("tool_calls", []).append(call)
        else:
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
    elif kind == "function_call_output":
        expect(isinstance(item.get("call_id"), str), f"'{where}.call_id' is required", where)
        output = item.get("output")
        text = output if isinstance(output, str) else text_of(output, f"{where}.output")
        messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": text})
    elif kind == "reasoning":
        return
    else:
        raise reject(f"{where}.type '{kind}'", WHO, "is not supported for Responses requests")


def _assistant_text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    texts = []
    for j, part in enumerate(as_list(content, f"{where}.content")):
        part = as_dict(part, f"{where}.content[{j}]")
        if part.get("type") in ("output_text", "input_text", "text"):
            texts.append(str(part.get("text", "")))
    return "".join(texts)


def _part(part: dict[str, Any], where: str) -> dict[str, Any]:
    kind = part.get("type")
    if kind in ("input_text", "output_text", "text"):
        expect(isinstance(part.get("text"), str), f"'{where}.text' is required", where)
        return {"type": "text", "text": part["text"]}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str):
            raise reject(f"{where}.file_id", WHO, "(an uploaded file) is not supported")
        image: dict[str, Any] = {"url": url}
        if part.get("detail"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        data = part.get("file_data")
        if not isinstance(data, str):
            raise reject(f"{where}.file_id", WHO, "(an uploaded file) is not supported")
        file: dict[str, Any] = {"file_data": data}
        if part.get("filename"):
            file["filename"] = part["filename"]
        return {"type": "file", "file": file}
    raise reject(f"{where}.type '{kind}'", WHO, "is not supported for Responses requests")


def _tool(raw: Any, i: int) -> dict[str, Any]:
    where = f"tools[{i}]"
    t = as_dict(raw, where)
    if t.get("type") != "function":
        raise reject(f"{where}.type '{t.get('type')}'", WHO, "(a hosted tool) is not supported")
    expect(isinstance(t.get("name"), str), f"'{where}.name' is required", where)
    fn: dict[str, Any] = {"name": t["name"]}
    for key in ("description", "parameters", "strict"):
        if t.get(key) is not None:
            fn[key] = t[key]
    return {"type": "function", "function": fn}


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        expect(isinstance(choice.get("name"), str), "'tool_choice.name' is required", "tool_choice")
        return {"type": "function", "function": {"name": choice["name"]}}
    raise InvalidRequest("'tool_choice' must be auto, none, required or a function")


# -- chat completion -> Response -------------------------------------------------------------


def response_usage(usage: Any) -> dict[str, Any]:
    prompt, completion, cached, _, reasoning = usage_parts(usage)
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": prompt + completion,
    }


def message_item(id_: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {
        "type": "message",
        "id": id_,
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


def call_item(call_id: str, name: str, arguments: str, status: str = "completed") -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": f"fc_{call_id}",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def response_object(
    request: dict[str, Any],
    *,
    id_: str,
    model: str,
    created: int,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    finish: str | None = None,
) -> dict[str, Any]:
    """The Response envelope, echoing the request's settings as OpenAI does."""
    incomplete = None
    if status == "completed" and finish == "length":
        status, incomplete = "incomplete", {"reason": "max_output_tokens"}
    elif status == "completed" and finish == "content_filter":
        status, incomplete = "incomplete", {"reason": "content_filter"}
    return {
        "id": id_,
        "object": "response",
        "created_at": created,
        "status": status,
        "error": None,
        "incomplete_details": incomplete,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "model": model,
        "output": output,
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "reasoning": request.get("reasoning") or {"effort": None, "summary": None},
        "store": False,
        "temperature": request.get("temperature"),
        "text": request.get("text") or {"format": {"type": "text"}},
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": request.get("tools") or [],
        "top_p": request.get("top_p"),
        "truncation": "disabled",
        "usage": usage,
        "user": request.get("user"),
        "metadata": request.get("metadata") or {},
    }


def chat_to_response(
    resp: dict[str, Any], *, request: dict[str, Any], id_: str, model: str, created: int
) -> dict[str, Any]:
    choices = resp.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    output: list[dict[str, Any]] = []
    text = message.get("content")
    if isinstance(text, list):
        text = "".join(p.get("text", "") for p in text if isinstance(p, dict))
    if text:
        output.append(message_item(f"msg_{id_}", text))
    for call in message.get("tool_calls") or []:
        fn = call.get("function") or {}
        output.append(
            call_item(str(call.get("id")), str(fn.get("name")), fn.get("arguments") or "{}")
        )
    return response_object(
        request,
        id_=id_,
        model=model,
        created=created,
        status="completed",
        output=output,
        usage=response_usage(resp.get("usage")),
        finish=choice.get("finish_reason"),
    )
