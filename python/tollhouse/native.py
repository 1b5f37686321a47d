"""The one door into Rust: only this module imports ``tollhouse._core``.

Typed wrappers over the compiled core.  Errors raised by the core are translated into
the project's error tree here (``_core.ConfigError`` -> ``tollhouse.errors.ConfigError``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, ParamSpec, TypeVar

from tollhouse import _core
from tollhouse.errors import ConfigError, InvalidRequest

P = ParamSpec("P")
T = TypeVar("T")

CORE_VERSION: str = _core.__version__


@contextmanager
def _config_errors() -> Iterator[None]:
    try:
        yield
    except _core.ConfigError as exc:
        raise ConfigError(str(exc)) from None


def _translating(fn: Callable[P, T]) -> Callable[P, T]:
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        with _config_errors():
            return fn(*args, **kwargs)

    return wrapper


# ---------------------------------------------------------------------------------------
# tokens
# ---------------------------------------------------------------------------------------


def encoding_for_model(model: str) -> str:
    """``"o200k_base"`` | ``"cl100k_base"`` for OpenAI models, ``"estimate:anthropic"`` /
    ``"estimate:gemini"`` for claude-* / gemini-*; unknown models -> ``"o200k_base"``."""
    return _core.encoding_for_model(model)


def count_text_tokens(model: str, text: str) -> int:
    """Tokens of a plain text as ``model`` counts them (estimates for Claude/Gemini)."""
    return _core.count_text_tokens(model, text)


def count_encoding_tokens(encoding: str, text: str) -> int:
    """Exact tokens of ``text`` in ``"o200k_base"`` or ``"cl100k_base"``."""
    return _core.count_encoding_tokens(encoding, text)


def reference_token_count(encoding: str, text: str) -> int:
    """The same count from the unmodified reference encoder (tiktoken-rs); for tests."""
    return _core.count_encoding_tokens_reference(encoding, text)


def count_messages_tokens(model: str, messages: list[Any], tools: list[Any] | None = None) -> int:
    """Whole-request prompt tokens of parsed chat ``messages`` (+ ``tools``).

    Odd shapes are counted, never rejected; only a ``messages`` that is not a list
    raises :class:`InvalidRequest`.
    """
    if not isinstance(messages, list):
        raise InvalidRequest("messages must be a list")
    return _core.count_messages_tokens(model, messages, tools)


def count_chat_tokens(model: str, body: bytes) -> int:
    """Prompt tokens of a raw chat request body; :class:`InvalidRequest` when it is not a
    JSON object with a ``messages`` list."""
    try:
        return _core.count_chat_tokens(model, bytes(body))
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None


def warm_up_tokenizers() -> None:
    """Load both vocabularies now (at start-up) rather than on the first request."""
    _core.warm_up_tokenizers()


# (end of tokens)


# ---------------------------------------------------------------------------------------
# redact
# ---------------------------------------------------------------------------------------

Span = _core.Span
Redaction = _core.Redaction
StreamRedactor = _core.StreamRedactor


def _modes(modes: Mapping[str, str] | None) -> dict[str, str] | None:
    return None if modes is None else dict(modes)


class Redactor:
    """Compiled secret/PII detectors (immutable; build a new one on config reload).

    ``families`` None enables every built-in family; ``custom`` adds ``(TYPE_NAME, regex)``
    patterns (Rust regex syntax, linear-time); an invalid one raises ``ConfigError``.
    Modes map a family name (or ``"default"``) to ``"mask"``, ``"hash"`` or ``"block"``
    (masked here; blocking is the pipeline's decision); a bad mode raises ``ConfigError``.
    Offsets are ``str`` indices. Safe to share between threads.
    """

    __slots__ = ("_core",)

    def __init__(
        self,
        families: Sequence[str] | None = None,
        custom: Sequence[tuple[str, str]] | None = None,
        hash_salt: str | None = None,
    ) -> None:
        with _config_errors():
            self._core = _core.Redactor(
                None if families is None else list(families),
                None if custom is None else [(name, rx) for name, rx in custom],
                hash_salt,
            )

    # The per-request methods translate errors with a plain try/except: a
    # @contextmanager costs microseconds per call, more than a short scan.

    @staticmethod
    def families() -> list[str]:
        """All built-in family names."""
        return _core.Redactor.families()

    def enabled(self) -> list[str]:
        """The families this redactor detects, built-in and custom."""
        return self._core.enabled()

    def scan(self, text: str) -> list[Span]:
        return self._core.scan(text)

    def redact(self, text: str, modes: Mapping[str, str] | None = None) -> Redaction:
        try:
            return self._core.redact(text, _modes(modes))
        except _core.ConfigError as exc:
            raise ConfigError(str(exc)) from None

    def redact_many(
        self, texts: Sequence[str], modes: Mapping[str, str] | None = None
    ) -> list[Redaction]:
        try:
            return self._core.redact_many(list(texts), _modes(modes))
        except _core.ConfigError as exc:
            raise ConfigError(str(exc)) from None

    def redact_parts(
        self, parts: Sequence[str], modes: Mapping[str, str] | None = None
    ) -> list[Redaction]:
        """Redact the content parts of one message as the upstream sees them (joined).

        A secret split across parts is masked where it starts and its remaining pieces are
        removed from the following parts; returns one ``Redaction`` per part.
        """
        try:
            return self._core.redact_parts(list(parts), _modes(modes))
        except _core.ConfigError as exc:
            raise ConfigError(str(exc)) from None

    def stream(self, modes: Mapping[str, str] | None = None) -> StreamRedactor:
        """A redactor for one stream: ``feed(chunk) -> str`` returns what is safe to emit
        now, ``finish() -> str`` the rest; ``count`` and ``families`` so far."""
        try:
            return self._core.stream(_modes(modes))
        except _core.ConfigError as exc:
            raise ConfigError(str(exc)) from None

    def __repr__(self) -> str:
        return repr(self._core)


def luhn_valid(digits: str) -> bool:
    return _core.luhn_valid(digits)


def iban_valid(iban: str) -> bool:
    return _core.iban_valid(iban)


def ssn_valid(ssn: str) -> bool:
    return _core.ssn_valid(ssn)


def shannon_entropy(text: str) -> float:
    return _core.shannon_entropy(text)


# (end of redact)


# ---------------------------------------------------------------------------------------
# policy
# ---------------------------------------------------------------------------------------

PolicyMatch = _core.PolicyMatch


class PolicyMatcher:
    """Content-policy rules compiled once into an immutable matcher.

    Each rule is a mapping: ``id``, ``action`` ("block" | "warn", default "block"),
    ``keywords`` (Aho-Corasick; ``case_sensitive``/``whole_word`` default False),
    ``regex`` (linear-time regex crate), ``models_allow``/``models_deny`` (globs with
    ``*``/``?``), ``max_bytes``, ``max_tokens``.  A rule matches when any of its
    conditions fires.  Bad rules raise :class:`ConfigError` naming the rule.
    """

    __slots__ = ("_matcher",)
    _matcher: _core.PolicyMatcher

    def __init__(self, rules: Sequence[Mapping[str, Any]]) -> None:
        with _config_errors():
            object.__setattr__(self, "_matcher", _core.PolicyMatcher(rules))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("PolicyMatcher is immutable")

    def check(
        self, text: str, model: str | None = None, tokens: int | None = None
    ) -> list[PolicyMatch]:
        """Matched rules in rule order, at most one match per rule.

        ``detail`` names the keyword, pattern or glob that fired (the model name for an
        allow-list miss, ``max_bytes=N``/``max_tokens=N`` for size limits), never the
        surrounding text.  The GIL is released for large texts.
        """
        return self._matcher.check(text, model, tokens)

    def rule_count(self) -> int:
        return self._matcher.rule_count()

    def __repr__(self) -> str:
        return f"PolicyMatcher({self._matcher.rule_count()} rules)"


# (end of policy)


# ---------------------------------------------------------------------------------------
# cost
# ---------------------------------------------------------------------------------------

Price = _core.Price


class PriceTable:
    """The shipped price table plus config overrides (USD per million tokens).

    Costs come back as integer micro-dollars.  Immutable: a config reload builds a new
    table.  Bad override entries raise :class:`ConfigError` naming the model and field.
    """

    __slots__ = ("_table",)
    _table: _core.PriceTable

    def __init__(self, overrides: Mapping[str, Mapping[str, float | int]] | None = None) -> None:
        with _config_errors():
            object.__setattr__(self, "_table", _core.PriceTable(overrides))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("PriceTable is immutable")

    def has(self, model: str) -> bool:
        return self._table.has(model)

    def models(self) -> list[str]:
        return self._table.models()

    def price(self, model: str) -> Price | None:
        return self._table.price(model)

    def cost(
        self,
        model: str,
        prompt_tokens: int,
        completion_tokens: int,
        cached_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> int | None:
        """Micro-dollars for this usage (None for an unknown model), rounded up.

        ``cached_tokens`` and ``cache_write_tokens`` are parts of ``prompt_tokens``
        (OpenAI semantics) billed at their own rates.
        """
        return self._table.cost(
            model, prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens
        )

    def worst_case(
        self, model: str, prompt_tokens: int, max_output_tokens: int | None
    ) -> int | None:
        """The most a request can cost, for reservations (None for an unknown model)."""
        return self._table.worst_case(model, prompt_tokens, max_output_tokens)

    def __len__(self) -> int:
        return len(self._table)

    def __contains__(self, model: object) -> bool:
        return isinstance(model, str) and self._table.has(model)

    def __repr__(self) -> str:
        return f"PriceTable({len(self._table)} models)"


def micros_to_usd(micros: int) -> float:
    """Micro-dollars to USD, for the JSON edge only."""
    return micros / MICROS_PER_USD


def usd_to_micros(usd: float) -> int:
    """USD to micro-dollars, rounded to the nearest (exact for decimal inputs like 0.1)."""
    if isinstance(usd, bool) or not isinstance(usd, int | float) or not math.isfinite(usd):
        raise ValueError(f"expected a finite number of USD, got {usd!r}")
    return int((Decimal(repr(usd)) * MICROS_PER_USD).to_integral_value(ROUND_HALF_EVEN))


MICROS_PER_USD = 1_000_000

# (end of cost)
