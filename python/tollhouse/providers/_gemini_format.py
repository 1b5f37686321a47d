"""OpenAI chat <-> Gemini ``generateContent``, non-streaming bodies.

Gemini names a function result by the function's name, not by a call id, so the request
translation remembers which name each earlier ``tool_call_id`` belonged to.  Gemini 3
also wants each call's ``thoughtSignature`` back on the next turn; the response side
folds it into the OpenAI call id (``call_x__thought__SIG``) and the request side unfolds
it, so unchanged OpenAI clients keep multi-turn tool use working.
"""

from __future__ import annotations

import uuid
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
    chat_usage,
    check_fields,
    completion,
    dump_arguments,
    expect,
    function_tool,
    named_function,
    part_url,
    reject,
    split_data_url,
    stop_sequences,
    text_of,
    tool_call,
)

PROVIDER = "gemini"
SIG_SEP = "__thought__"

FINISH_TO_CHAT = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "MALFORMED_FUNCTION_CALL": "stop",
}

_NEUTRAL: dict[str, tuple[Any, ...]] = {**UNTRANSLATED, "parallel_tool_calls": (None, True)}
_IGNORED = frozenset(
    {"model", "stream", "stream_options", "store", "metadata", "service_tier", "user"}
)
_CONFIG = {
    "temperature": "temperature",
    "top_p": "topP",
    "top_k": "topK",
    "n": "candidateCount",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
    "seed": "seed",
}
_HANDLED = frozenset(
    {
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "tools",
        "tool_choice",
        "response_format",
        *_CONFIG,
    }
)
_KNOWN = _HANDLED | _IGNORED


def chat_to_gemini(body: dict[str, Any], *, drop_unsupported: bool = False) -> dict[str, Any]:
    """A ``generateContent`` body (the model goes in the URL) from an OpenAI chat request."""
    check_fields(body, _KNOWN, _NEUTRAL, PROVIDER, drop=drop_unsupported)
    system, contents = _contents(as_list(body.get("messages"), "messages"))
    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
    config: dict[str, Any] = {}
    for key, name in _CONFIG.items():
        if body.get(key) is not None:
            config[name] = body[key]
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None:
        config["maxOutputTokens"] = max_tokens
    stop = body.get("stop")
    if stop is not None:
        config["stopSequences"] = stop_sequences(stop)
    fmt = body.get("response_format")
    if fmt is not None:
        fmt = as_dict(fmt, "response_format")
        kind = fmt.get("type")
        if kind == "json_object":
            config["responseMimeType"] = "application/json"
        elif kind == "json_schema":
            schema = as_dict(fmt.get("json_schema"), "response_format.json_schema")
            config["responseMimeType"] = "application/json"
            config["responseJsonSchema"] = schema.get("schema") or {}
        elif kind != "text":
            raise InvalidRequest("'response_format.type' must be text, json_object or json_schema")
    if config:
        out["generationConfig"] = config
    if body.get("tools"):
        decls = [_declaration(t, i) for i, t in enumerate(as_list(body["tools"], "tools"))]
        out["tools"] = [{"functionDeclarations": decls}]
    choice = body.get("tool_choice")
    if choice is not None:
        out["toolConfig"] = {"functionCallingConfig": _calling_config(choice)}
    return out


def _contents(msgs: list[Any]) -> tuple[list[str], list[dict[str, Any]]]:
    system: list[str] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    for i, raw in enumerate(msgs):
        where = f"messages[{i}]"
        m = as_dict(raw, where)
        role = m.get("role")
        if role in ("system", "developer"):
            system.append(text_of(m.get("content"), f"{where}.content"))
            continue
        if role == "user":
            grole, parts = "user", _user_parts(m.get("content"), f"{where}.content")
        elif role == "assistant":
            grole, parts = "model", _model_parts(m, where, names)
        elif role == "tool":
            call_id = m.get("tool_call_id")
            expect(isinstance(call_id, str), f"'{where}.tool_call_id' is required", where)
            name = names.get(call_id)  # type: ignore[arg-type]
            expect(name is not None, f"'{where}.tool_call_id' matches no earlier tool call", where)
            result = {"content": text_of(m.get("content"), f"{where}.content")}
            grole, parts = "user", [{"functionResponse": {"name": name, "response": result}}]
        else:
            raise InvalidRequest(f"'{where}.role' must be system, user, assistant or tool")
        if parts:
            add_turn(contents, grole, "parts", parts)
    expect(
        bool(contents), "'messages' must hold at least one user or assistant message", "messages"
    )
    return system, contents


def _user_parts(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}]
    parts: list[dict[str, Any]] = []
    for i, raw in enumerate(as_list(content, where)):
        pw = f"{where}[{i}]"
        part = as_dict(raw, pw)
        kind = part.get("type")
        if kind == "text":
            parts.append({"text": text_of([part], pw)})
        elif kind in ("image_url", "file"):
            url = part_url(part, pw)
            inline = split_data_url(url, pw)
            if inline:
                parts.append({"inlineData": {"mimeType": inline[0], "data": inline[1]}})
            else:
                parts.append({"fileData": {"mimeType": _guess_mime(url), "fileUri": url}})
        elif kind == "input_audio":
            audio = as_dict(part.get("input_audio"), f"{pw}.input_audio")
            fmt = audio.get("format") or "wav"
            parts.append(
                {"inlineData": {"mimeType": f"audio/{fmt}", "data": audio.get("data", "")}}
            )
        else:
            raise reject(f"{pw}.type '{kind}'", PROVIDER)
    return parts


def _guess_mime(url: str) -> str:
    tail = url.rsplit("?", 1)[0].rsplit(".", 1)[-1].lower()
    return {
        "png": "image/png",
        "jpg": "image/jpeg",
        "jpeg": "image/jpeg",
        "webp": "image/webp",
        "gif": "image/gif",
        "pdf": "application/pdf",
    }.get(tail, "application/octet-stream")


def _model_parts(m: dict[str, Any], where: str, names: dict[str, str]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    content = m.get("content")
    if isinstance(content, list):
        content = "".join(
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    if content:
        parts.append({"text": text_of(content, f"{where}.content")})
    for call_id, name, args in assistant_calls(m, where):
        if isinstance(call_id, str):
            names[call_id] = name
        part: dict[str, Any] = {"functionCall": {"name": name, "args": args}}
        if isinstance(call_id, str) and SIG_SEP in call_id:
            part["thoughtSignature"] = call_id.split(SIG_SEP, 1)[1]
        parts.append(part)
    return parts


def _declaration(raw: Any, i: int) -> dict[str, Any]:
    _, fn = function_tool(raw, i, PROVIDER)
    decl: dict[str, Any] = {"name": fn["name"]}
    if fn.get("description"):
        decl["description"] = fn["description"]
    if fn.get("parameters"):
        decl["parametersJsonSchema"] = fn["parameters"]
    return decl


def _calling_config(choice: Any) -> dict[str, Any]:
    if choice == "auto":
        return {"mode": "AUTO"}
    if choice == "none":
        return {"mode": "NONE"}
    if choice == "required":
        return {"mode": "ANY"}
    name = named_function(choice)
    if name is None:
        raise bad_tool_choice()
    return {"mode": "ANY", "allowedFunctionNames": [name]}


# -- response -> chat completion --------------------------------------------------------------


def gemini_usage(meta: Any) -> dict[str, Any]:
    u = meta if isinstance(meta, dict) else {}
    prompt = (u.get("promptTokenCount") or 0) + (u.get("toolUsePromptTokenCount") or 0)
    thoughts = u.get("thoughtsTokenCount") or 0
    completion = (u.get("candidatesTokenCount") or 0) + thoughts
    return chat_usage(
        prompt, completion, cached=u.get("cachedContentTokenCount") or 0, reasoning=thoughts
    )


def call_id(response_id: str, n: int, call: dict[str, Any], part: dict[str, Any]) -> str:
    base = call.get("id") or f"call_{response_id or uuid.uuid4().hex[:16]}_{n}"
    sig = part.get("thoughtSignature")
    return f"{base}{SIG_SEP}{sig}" if sig else str(base)


def candidate_message(cand: dict[str, Any], response_id: str) -> tuple[dict[str, Any], str]:
    """(chat message, finish_reason) for one candidate."""
    text: list[str] = []
    thoughts: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in (cand.get("content") or {}).get("parts") or []:
        if "functionCall" in part:
            calls.append(function_call(response_id, len(calls), part))
        elif isinstance(part.get("text"), str):
            (thoughts if part.get("thought") else text).append(part["text"])
    message = assistant_message(text, thoughts, calls)
    return message, finish_reason(cand.get("finishReason"), bool(calls))


def function_call(response_id: str, n: int, part: dict[str, Any]) -> dict[str, Any]:
    """The chat tool call of a ``functionCall`` part (the ``n``-th of the answer)."""
    fc = part["functionCall"] or {}
    args = dump_arguments(fc.get("args"))
    return tool_call(call_id(response_id, n, fc, part), fc.get("name"), args)


def finish_reason(reason: Any, has_calls: bool) -> str:
    if has_calls and reason in (None, "STOP"):
        return "tool_calls"
    return FINISH_TO_CHAT.get(str(reason), "stop")


def gemini_to_chat(resp: dict[str, Any], *, model: str, created: int) -> dict[str, Any]:
    rid = resp.get("responseId") or ""
    choices = []
    for i, cand in enumerate(resp.get("candidates") or []):
        message, finish = candidate_message(cand, rid)
        choices.append(chat_choice(cand.get("index", i), message, finish))
    if not choices:  # the prompt itself was blocked
        blocked = {"role": "assistant", "content": None}
        choices.append(chat_choice(0, blocked, "content_filter"))
    return completion(
        f"chatcmpl-{rid}" if rid else f"chatcmpl-{uuid.uuid4().hex}",
        model,
        created,
        choices,
        gemini_usage(resp.get("usageMetadata")),
    )
