"""Redaction of request content before it leaves the gateway (the scan is Rust's).

Every text the upstream would see is a *leaf*: a string value inside ``messages``,
``system``, ``input``, ``instructions`` or ``prompt`` (content parts, tool-call
arguments, tool results, Anthropic blocks, Responses items), except structural fields
(``role``, ``type``, ids, ...) and inline ``data:`` payloads.  The leaves of one message
are redacted together with ``Redactor.redact_parts`` so a secret split across parts is
still caught; the masks are written back in place.

Config section ``redaction``::

    redaction:
      modes: {EMAIL: hash, default: mask}      # mask | hash | block per family
      custom: [{name: EMPLOYEE_ID, pattern: "EMP-[0-9]{6}"}]
      hash_salt: env:REDACTION_SALT

A key's ``metadata["redaction"]`` (``{FAMILY: mode}``) overrides the modes; a family in
``block`` mode turns the request into 403 ``policy_blocked`` instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from tollhouse import native
from tollhouse.errors import ConfigError
from tollhouse.guard.presets import PRESETS, REDACTION_FIELD, Preset
from tollhouse.store.base import KeyRecord

TEXT_ROOTS: Final = ("messages", "system", "input", "instructions", "prompt")
SKIP_KEYS: Final = frozenset(
    {
        "role",
        "type",
        "id",
        "tool_call_id",
        "tool_use_id",
        "call_id",
        "model",
        "name",
        "cache_control",
        "media_type",
        "detail",
        "status",
        "format",
        "signature",
        "encrypted_content",
        "file_id",
        "image_url",
    }
)
MODES: Final = ("mask", "hash", "block")

Leaf = tuple[dict[str, Any] | list[Any], Any]  # (container, key or index)


def _walk(node: dict[str, Any] | list[Any], out: list[Leaf], depth: int = 0) -> None:
    if depth > 32:
        return
    entries: Iterable[tuple[Any, Any]] = node.items() if isinstance(node, dict) else enumerate(node)
    for k, v in entries:
        if k in SKIP_KEYS:  # never a list index
            continue
        if isinstance(v, str):
            if v and not v.startswith("data:"):
                out.append((node, k))
        elif isinstance(v, dict | list):
            _walk(v, out, depth + 1)


def _group(leaves: list[Leaf], groups: list[list[Leaf]]) -> None:
    """The text parts of one message form one group (the upstream reads them joined);
    every other leaf (a tool argument, a tool result...) stands alone."""
    parts = [leaf for leaf in leaves if leaf[1] == "text"]
    if len(parts) > 1:
        groups.append(parts)
        groups.extend([leaf] for leaf in leaves if leaf[1] != "text")
    else:
        groups.extend([leaf] for leaf in leaves)


def message_groups(body: Mapping[str, Any]) -> list[list[Leaf]]:
    """The text leaves of a request body, grouped per message's text parts."""
    groups: list[list[Leaf]] = []
    for root in TEXT_ROOTS:
        value = body.get(root)
        if isinstance(value, str):
            if value:
                groups.append([(body, root)])  # type: ignore[list-item]
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, str):
                    if item:
                        groups.append([(value, i)])
                elif isinstance(item, dict | list):
                    leaves: list[Leaf] = []
                    _walk(item, leaves)
                    _group(leaves, groups)
        elif isinstance(value, dict):
            leaves = []
            _walk(value, leaves)
            _group(leaves, groups)
    return groups


def leaf_text(leaf: Leaf) -> str:
    container, k = leaf
    text: str = container[k]
    return text


def request_text(groups: list[list[Leaf]]) -> str:
    """Everything the upstream would read, joined (for policy checks)."""
    return "\n".join(leaf_text(leaf) for group in groups for leaf in group)


@dataclass(slots=True)
class Outcome:
    count: int = 0
    families: set[str] = field(default_factory=set)
    blocked: list[str] = field(default_factory=list)  # families in block mode that matched


def _parse_modes(raw: Any, where: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping of family to mode")
    out: dict[str, str] = {}
    for fam, mode in raw.items():
        if not isinstance(fam, str) or mode not in MODES:
            raise ConfigError(f"{where}.{fam}: mode must be one of {', '.join(MODES)}")
        out["default" if fam in ("default", "*") else fam.upper()] = mode
    return out


class RequestRedactor:
    """One compiled ``Redactor`` per preset family set, plus the configured modes."""

    def __init__(self, section: Any = None) -> None:
        section = section or {}
        if not isinstance(section, Mapping):
            raise ConfigError("redaction: expected a mapping")
        self.modes = _parse_modes(section.get("modes"), "redaction.modes")
        custom: list[tuple[str, str]] = []
        for i, item in enumerate(section.get("custom") or ()):
            if not (
                isinstance(item, Mapping)
                and isinstance(item.get("name"), str)
                and isinstance(item.get("pattern"), str)
            ):
                raise ConfigError(f"redaction.custom[{i}]: expected {{name, pattern}} strings")
            custom.append((item["name"].upper(), item["pattern"]))
        salt_text = section.get("hash_salt")
        if salt_text is not None and not isinstance(salt_text, str):
            raise ConfigError("redaction.hash_salt: expected a string")
        self.custom = custom
        self._by_families: dict[tuple[str, ...] | None, native.Redactor] = {}
        for preset in PRESETS.values():
            if preset.families not in self._by_families:
                families = list(preset.families) if preset.families is not None else None
                self._by_families[preset.families] = native.Redactor(families, custom, salt_text)
        self.block_configured = "block" in self.modes.values()

    def redactor(self, preset: Preset) -> native.Redactor:
        return self._by_families[preset.families]

    def modes_for(self, key: KeyRecord | None) -> dict[str, str]:
        extra = key.metadata.get(REDACTION_FIELD) if key is not None else None
        if not extra:
            return self.modes
        try:
            return {**self.modes, **_parse_modes(extra, "key redaction")}
        except ConfigError:
            return self.modes  # a bad per-key override never breaks the key's traffic

    def apply(self, groups: list[list[Leaf]], preset: Preset, modes: dict[str, str]) -> Outcome:
        """Redact the leaves in place; what was found and which families block."""
        red = self.redactor(preset)
        out = Outcome()
        arg = modes or None
        single = [group[0] for group in groups if len(group) == 1]
        if single:  # one call into Rust for every standalone text
            results = red.redact_many([leaf_text(leaf) for leaf in single], arg)
            _write_back(single, results, out)
        for group in groups:
            if len(group) > 1:
                results = red.redact_parts([leaf_text(leaf) for leaf in group], arg)
                _write_back(group, results, out)
        if out.families and modes:
            default = modes.get("default", "mask")
            out.blocked = sorted(f for f in out.families if modes.get(f, default) == "block")
        return out


def _write_back(leaves: list[Leaf], results: list[native.Redaction], out: Outcome) -> None:
    for leaf, result in zip(leaves, results, strict=True):
        if result.count:
            container, k = leaf
            container[k] = result.text
            out.count += result.count
            out.families.update(result.families)
        elif result.text != leaf_text(leaf):  # the cut tail of a secret split over parts
            container, k = leaf
            container[k] = result.text
