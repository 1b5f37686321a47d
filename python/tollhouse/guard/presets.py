"""Security presets: ``relaxed``, ``standard``, ``strict`` (the proxy document's tiers).

A key names its preset in ``metadata["preset"]``; a key without one gets ``standard``
(secrets and personal data redacted by default).  A preset decides which stages run for
the key; the limits themselves (session breakers, audit model) come from the config.

* ``relaxed``: personal-data redaction only; no policies, sessions or audit.
* ``standard``: every secret and personal-data family, policies, session breakers with
  loop detection.
* ``strict``: standard plus response scanning, blocking audit and tighter session limits
  (``strict_factor`` of the configured ones).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from tollhouse.errors import ValidationError
from tollhouse.store.base import KeyRecord

PresetId = Literal["relaxed", "standard", "strict"]
DEFAULT_PRESET: Final = "standard"
PRESET_FIELD: Final = "preset"
REDACTION_FIELD: Final = "redaction"  # key metadata: {FAMILY: mode} overrides

PERSONAL_FAMILIES: Final = ("EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "US_SSN")


@dataclass(frozen=True, slots=True)
class Preset:
    id: str
    families: tuple[str, ...] | None  # None: every built-in and custom family
    policies: bool
    sessions: bool
    loop_detection: bool
    response_scan: bool
    audit: Literal["off", "async", "blocking"]
    session_factor: float = 1.0  # multiplies the configured session limits

    def describe(self) -> dict[str, object]:
        return {
            "id": self.id,
            "redaction": list(self.families) if self.families is not None else "all",
            "policies": self.policies,
            "sessions": self.sessions,
            "loopDetection": self.loop_detection,
            "responseScan": self.response_scan,
            "audit": self.audit,
        }


PRESETS: Final[dict[str, Preset]] = {
    "relaxed": Preset(
        "relaxed",
        PERSONAL_FAMILIES,
        policies=False,
        sessions=False,
        loop_detection=False,
        response_scan=False,
        audit="off",
    ),
    "standard": Preset(
        "standard",
        None,
        policies=True,
        sessions=True,
        loop_detection=True,
        response_scan=False,
        audit="off",
    ),
    "strict": Preset(
        "strict",
        None,
        policies=True,
        sessions=True,
        loop_detection=True,
        response_scan=True,
        audit="blocking",
        session_factor=0.5,
    ),
}


def preset_named(name: object) -> Preset:
    """The preset called ``name`` (422 naming the choices otherwise)."""
    preset = PRESETS.get(name) if isinstance(name, str) else None
    if preset is None:
        raise ValidationError(
            "unknown preset", {"presetId": f"expected one of: {', '.join(PRESETS)}"}
        )
    return preset


def preset_of(key: KeyRecord | None) -> Preset:
    """The key's preset; ``standard`` when it has none (or an unknown name)."""
    name = key.metadata.get(PRESET_FIELD) if key is not None else None
    preset = PRESETS.get(name) if isinstance(name, str) else None
    return PRESETS[DEFAULT_PRESET] if preset is None else preset
