"""The model registry and the request's routing preferences.

The registry maps every public model name and alias to its deployments (``Target``:
provider, upstream model, weight, region, price).  ``Preferences`` is the request's
``provider`` object as OpenRouter documents it (``order``, ``only``, ``ignore``,
``allow_fallbacks``, ``sort``, ``max_price``, ``require_parameters``); ``order_targets``
applies it to one model's deployments.  Without ``order`` or ``sort`` the deployments
are load-balanced by weight (a weighted shuffle), healthy ones first.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tollhouse import native
from tollhouse.config import ModelConfig, ProviderConfig
from tollhouse.errors import InvalidRequest

SORTS = ("price", "throughput", "latency")
# Request fields every OpenAI-shaped request has; never a reason to exclude a provider.
_BASE_FIELDS = frozenset(
    {"model", "models", "messages", "input", "stream", "stream_options", "provider", "user"}
)
# What each provider kind accepts (``require_parameters``); overridable per provider in
# ``routing.supported_parameters``.
_COMMON = frozenset(
    {"max_tokens", "max_completion_tokens", "temperature", "top_p", "stop", "tools", "tool_choice"}
)
# What an Azure deployment of an OpenAI model takes; OpenAI itself takes a few more.
_AZURE = _COMMON | {
    "n",
    "seed",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "frequency_penalty",
    "presence_penalty",
    "response_format",
    "parallel_tool_calls",
    "encoding_format",
    "dimensions",
}
KIND_PARAMETERS: dict[str, frozenset[str]] = {
    "openai": _AZURE | {"metadata", "reasoning", "service_tier"},
    "azure": _AZURE,
    "anthropic": _COMMON | {"top_k", "metadata", "reasoning", "parallel_tool_calls"},
    "gemini": _COMMON
    | {"top_k", "seed", "frequency_penalty", "presence_penalty", "response_format", "n"},
}
KIND_PARAMETERS["openai_compatible"] = KIND_PARAMETERS["openai"]


@dataclass(frozen=True, slots=True)
class Target:
    """One deployment of a public model."""

    model: str  # the public model name
    provider: str
    upstream_model: str
    weight: int = 1
    region: str | None = None
    input_micros_per_mtok: int | None = None
    output_micros_per_mtok: int | None = None
    parameters: frozenset[str] | None = None  # None: accepts anything
    # The deployment's identity (breakers and health are per deployment): made once
    # here, not on each of the many reads a request does.
    id: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", f"{self.provider}/{self.upstream_model}")

    def matches(self, name: str) -> bool:
        """Whether a provider slug or deployment id from a request names this target."""
        low = name.lower()
        return low in (self.provider.lower(), self.id.lower())


class Registry:
    """Public names and aliases → ``ModelConfig`` and their ``Target`` deployments."""

    def __init__(
        self,
        models: Mapping[str, ModelConfig],
        providers: Mapping[str, ProviderConfig],
        prices: native.PriceTable,
        supported: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self.configs: dict[str, ModelConfig] = dict(models)
        for m in models.values():
            for alias in m.aliases:
                self.configs.setdefault(alias, m)
        self.providers = dict(providers)
        self._targets: dict[str, tuple[Target, ...]] = {}
        overrides = {k: frozenset(v) for k, v in (supported or {}).items()}
        for m in models.values():
            targets = []
            for d in m.deployments:
                price = prices.price(d.model) or prices.price(m.name)
                kind = providers[d.provider].kind if d.provider in providers else ""
                params = overrides.get(d.provider, KIND_PARAMETERS.get(kind))
                targets.append(
                    Target(
                        model=m.name,
                        provider=d.provider,
                        upstream_model=d.model,
                        weight=d.weight,
                        region=d.region,
                        input_micros_per_mtok=price.input_micros_per_mtok if price else None,
                        output_micros_per_mtok=price.output_micros_per_mtok if price else None,
                        parameters=params,
                    )
                )
            self._targets[m.name] = tuple(targets)

    def lookup(self, name: str) -> ModelConfig | None:
        return self.configs.get(name)

    def targets(self, name: str) -> tuple[Target, ...]:
        config = self.configs.get(name)
        return self._targets.get(config.name, ()) if config is not None else ()

    def all_targets(self) -> list[Target]:
        return [t for ts in self._targets.values() for t in ts]

    def model_names(self) -> list[str]:
        return list(self._targets)


# -- preferences --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Preferences:
    order: tuple[str, ...] = ()
    only: tuple[str, ...] | None = None
    ignore: tuple[str, ...] = ()
    allow_fallbacks: bool = True
    sort: str | None = None
    max_prompt_micros: int | None = None  # per million prompt tokens
    max_completion_micros: int | None = None
    require_parameters: bool = False


DEFAULT_PREFERENCES = Preferences()


def _names(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InvalidRequest(f"{where}: expected an array of provider names")
    return tuple(value)


def _price(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InvalidRequest(f"{where}: expected a non-negative number (USD per million tokens)")
    return round(float(value) * 1_000_000)


def parse_preferences(value: Any) -> Preferences:
    """The request's ``provider`` object (absent: the defaults); bad shapes are a 400."""
    if value is None:
        return DEFAULT_PREFERENCES
    if not isinstance(value, dict):
        raise InvalidRequest("provider: expected an object of routing preferences")
    order = _names(value["order"], "provider.order") if value.get("order") is not None else ()
    only = _names(value["only"], "provider.only") if value.get("only") is not None else None
    ignore = _names(value["ignore"], "provider.ignore") if value.get("ignore") is not None else ()
    allow = value.get("allow_fallbacks", True)
    if allow is None:
        allow = True
    if not isinstance(allow, bool):
        raise InvalidRequest("provider.allow_fallbacks: expected true or false")
    require = value.get("require_parameters", False) or False
    if not isinstance(require, bool):
        raise InvalidRequest("provider.require_parameters: expected true or false")
    sort = value.get("sort")
    if isinstance(sort, dict):  # {"by": "price", "partition": ...}
        sort = sort.get("by")
    if sort is not None and sort not in SORTS:
        raise InvalidRequest(f"provider.sort: expected one of {', '.join(SORTS)}")
    max_price = value.get("max_price")
    if max_price is not None and not isinstance(max_price, dict):
        raise InvalidRequest("provider.max_price: expected an object {prompt, completion}")
    max_price = max_price or {}
    return Preferences(
        order=order,
        only=only,
        ignore=ignore,
        allow_fallbacks=allow,
        sort=sort,
        max_prompt_micros=_price(max_price.get("prompt"), "provider.max_price.prompt"),
        max_completion_micros=_price(max_price.get("completion"), "provider.max_price.completion"),
        require_parameters=require,
    )


def request_parameters(body: Mapping[str, Any]) -> set[str]:
    """The optional parameters a request uses (``require_parameters`` checks these)."""
    return {k for k, v in body.items() if v is not None and k not in _BASE_FIELDS}


def _eligible(t: Target, prefs: Preferences, params: set[str]) -> bool:
    if prefs.only is not None and not any(t.matches(n) for n in prefs.only):
        return False
    if any(t.matches(n) for n in prefs.ignore):
        return False
    if prefs.max_prompt_micros is not None and (
        t.input_micros_per_mtok is None or t.input_micros_per_mtok > prefs.max_prompt_micros
    ):
        return False
    if prefs.max_completion_micros is not None and (
        t.output_micros_per_mtok is None or t.output_micros_per_mtok > prefs.max_completion_micros
    ):
        return False
    return not (
        prefs.require_parameters and t.parameters is not None and not params <= t.parameters
    )


def weighted_shuffle(targets: list[Target], rng: Callable[[], float]) -> list[Target]:
    """Order by weight at random (Efraimidis–Spirakis keys): weight 3 leads 3x as often."""
    keyed = [(rng() ** (1.0 / t.weight), t) for t in targets]
    keyed.sort(key=lambda kt: kt[0], reverse=True)
    return [t for _, t in keyed]


def order_targets(
    targets: Iterable[Target],
    prefs: Preferences,
    params: set[str],
    *,
    healthy: Callable[[Target], bool],
    latency: Callable[[Target], float | None],
    throughput: Callable[[Target], float | None],
    rng: Callable[[], float] = random.random,
) -> list[Target]:
    """One model's deployments in the order to try them (filtered by the preferences)."""
    pool = [t for t in targets if _eligible(t, prefs, params)]
    if not pool:
        return []
    if len(pool) == 1 and not prefs.order:  # nothing to order (the common deployment)
        return pool
    if prefs.sort == "price":
        pool.sort(
            key=lambda t: (
                t.input_micros_per_mtok is None,
                (t.input_micros_per_mtok or 0) + (t.output_micros_per_mtok or 0),
            )
        )
    elif prefs.sort == "latency":
        pool.sort(key=lambda t: (latency(t) is None, latency(t) or 0.0))
    elif prefs.sort == "throughput":
        pool.sort(key=lambda t: (throughput(t) is None, -(throughput(t) or 0.0)))
    else:
        pool = weighted_shuffle(pool, rng)
        pool.sort(key=lambda t: not healthy(t))  # stable: healthy first, shuffle kept
    if prefs.order:
        rank = {}
        for i, name in enumerate(prefs.order):
            for t in pool:
                if t.matches(name) and t.id not in rank:
                    rank[t.id] = i
        listed = sorted((t for t in pool if t.id in rank), key=lambda t: rank[t.id])
        rest = [t for t in pool if t.id not in rank]
        pool = listed if not prefs.allow_fallbacks else listed + rest
    elif not prefs.allow_fallbacks:
        pool = pool[:1]
    return pool
