"""Cost arithmetic: the Rust core held against an exact ``fractions.Fraction`` reference."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from importlib import resources
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from tollhouse.config import default_config, parse_config
from tollhouse.errors import ConfigError
from tollhouse.native import PriceTable, micros_to_usd, usd_to_micros

SHIPPED: dict[str, Any] = json.loads(
    resources.files("tollhouse").joinpath("data/pricing.json").read_text("utf-8")
)["models"]

TABLE = PriceTable()

tokens = st.integers(min_value=0, max_value=10**12)
# USD per million tokens with up to six decimals, as a price file or override holds them.
usd_prices = st.integers(min_value=0, max_value=10**9).map(lambda m: m / 1_000_000)


def reference_cost(
    entry: dict[str, float], prompt: int, completion: int, cached: int = 0, write: int = 0
) -> int:
    """The exact cost in micro-dollars, rounded up once, from USD-per-Mtok prices."""

    def rate(key: str) -> Fraction:
        usd = entry.get(key, entry["input_per_mtok"])
        # prices are stored to the micro-dollar per Mtok
        return Fraction(round(Fraction(usd) * 1_000_000))

    prompt = max(prompt, cached + write)
    total = (
        (prompt - cached - write) * rate("input_per_mtok")
        + cached * rate("cached_input_per_mtok")
        + write * rate("cache_write_per_mtok")
        + completion * rate("output_per_mtok")
    )
    return math.ceil(total / 1_000_000)


def test_shipped_table_has_the_major_models() -> None:
    for model in (
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4.1",
        "o3",
        "o4-mini",
        "gpt-5",
        "gpt-5-mini",
        "text-embedding-3-small",
        "claude-3-5-haiku",
        "claude-sonnet-4-5",
        "claude-opus-4-1",
        "claude-haiku-4-5",
        "gemini-1.5-pro",
        "gemini-2.0-flash",
        "gemini-2.5-pro",
        "gemini-2.5-flash",
        "mock-1",
    ):
        assert TABLE.has(model), model
        assert model in TABLE
    assert sorted(SHIPPED) == TABLE.models()
    assert len(TABLE) == len(SHIPPED)


def test_mock_model_prices() -> None:
    price = TABLE.price("mock-1")
    assert price is not None
    assert price.input_micros_per_mtok == 1_000_000
    assert price.output_micros_per_mtok == 2_000_000
    assert price.cached_input_micros_per_mtok == 1_000_000
    assert TABLE.cost("mock-1", 1_000_000, 500_000) == 2_000_000
    assert TABLE.cost("mock-1", 1, 0) == 1
    assert TABLE.cost("mock-1", 0, 0) == 0


def test_known_figures() -> None:
    # gpt-4o: $2.50 in, $10 out, $1.25 cached per Mtok
    assert TABLE.cost("gpt-4o", 1000, 500) == 2500 + 5000
    assert TABLE.cost("gpt-4o", 1000, 0, cached_tokens=1000) == 1250
    # claude-sonnet-4-5: cache writes at $3.75, reads at $0.30
    assert TABLE.cost("claude-sonnet-4-5", 2000, 0, 1000, 1000) == 300 + 3750
    # a third of a micro-dollar is still charged as one
    assert TABLE.cost("gpt-4o-mini", 2, 0) == 1


def test_unknown_model_costs_none() -> None:
    assert TABLE.cost("nope-1", 10, 10) is None
    assert TABLE.worst_case("nope-1", 10, None) is None
    assert TABLE.price("nope-1") is None
    assert not TABLE.has("nope-1")


def test_snapshot_and_prefix_names_resolve() -> None:
    assert TABLE.price("gpt-4o-2024-08-06") == TABLE.price("gpt-4o")
    assert TABLE.price("openai/gpt-4.1-mini") == TABLE.price("gpt-4.1-mini")
    assert TABLE.price("claude-haiku-4-5-20251001") == TABLE.price("claude-haiku-4-5")
    # an older snapshot with its own price is matched exactly first
    assert TABLE.price("gpt-4o-2024-05-13") != TABLE.price("gpt-4o")


def test_worst_case() -> None:
    price = TABLE.price("gpt-4o")
    assert price is not None and price.max_output_tokens == 16384
    assert TABLE.worst_case("gpt-4o", 1000, 100) == 2500 + 1000
    assert TABLE.worst_case("gpt-4o", 1000, None) == 2500 + 16384 * 10
    # embeddings have no output limit: 4096 assumed, at an output price of 0
    assert TABLE.worst_case("text-embedding-3-small", 1_000_000, None) == 20_000


def test_negative_tokens_rejected() -> None:
    with pytest.raises(ValueError, match="prompt_tokens"):
        TABLE.cost("gpt-4o", -1, 0)
    with pytest.raises(ValueError, match="max_output_tokens"):
        TABLE.worst_case("gpt-4o", 1, -5)


@settings(max_examples=300, deadline=None)
@given(
    model=st.sampled_from(sorted(SHIPPED)),
    prompt=tokens,
    completion=tokens,
    cached=tokens,
    write=tokens,
)
def test_shipped_costs_match_fraction_reference(
    model: str, prompt: int, completion: int, cached: int, write: int
) -> None:
    expected = reference_cost(SHIPPED[model], prompt, completion, cached, write)
    assert TABLE.cost(model, prompt, completion, cached, write) == expected


@settings(max_examples=300, deadline=None)
@given(
    inp=usd_prices,
    out=usd_prices,
    cached=st.none() | usd_prices,
    write=st.none() | usd_prices,
    usage=st.tuples(tokens, tokens, tokens, tokens),
)
def test_override_costs_match_fraction_reference(
    inp: float,
    out: float,
    cached: float | None,
    write: float | None,
    usage: tuple[int, int, int, int],
) -> None:
    entry: dict[str, float] = {"input_per_mtok": inp, "output_per_mtok": out}
    if cached is not None:
        entry["cached_input_per_mtok"] = cached
    if write is not None:
        entry["cache_write_per_mtok"] = write
    table = PriceTable({"custom-model": entry})
    assert table.cost("custom-model", *usage) == reference_cost(entry, *usage)
    price = table.price("custom-model")
    assert price is not None
    assert price.input_micros_per_mtok == round(Fraction(inp) * 1_000_000)


def test_overrides_merge_with_shipped_entry() -> None:
    table = PriceTable(
        {
            "gpt-4o": {"output_per_mtok": 20},
            "mine": {"input_per_mtok": 0.5, "output_per_mtok": 1, "max_output_tokens": 100.0},
        }
    )
    price = table.price("gpt-4o")
    assert price is not None
    assert price.input_micros_per_mtok == 2_500_000
    assert price.output_micros_per_mtok == 20_000_000
    assert price.cached_input_micros_per_mtok == 1_250_000
    assert table.worst_case("mine", 0, None) == 100
    # the shipped table is untouched
    assert TABLE.cost("gpt-4o", 0, 1_000_000) == 10_000_000


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"input_per_mtok": -1, "output_per_mtok": 1}, "input_per_mtok"),
        ({"input_per_mtok": 1, "output_per_mtok": float("nan")}, "output_per_mtok"),
        ({"input_per_mtok": 1, "output_per_mtok": float("inf")}, "output_per_mtok"),
        ({"input_per_mtok": "1", "output_per_mtok": 1}, "input_per_mtok"),
        ({"input_per_mtok": True, "output_per_mtok": 1}, "input_per_mtok"),
        ({"input_per_mtok": None, "output_per_mtok": 1}, "input_per_mtok"),
        ({"input_per_mtok": 1, "output_per_mtok": 1, "colour": 1}, "colour"),
        ({"input_per_mtok": 1, "output_per_mtok": 1, "max_output_tokens": 0}, "max_output_tokens"),
        (
            {"input_per_mtok": 1, "output_per_mtok": 1, "max_output_tokens": 1.5},
            "max_output_tokens",
        ),
        ({"input_per_mtok": 10**40, "output_per_mtok": 1}, "input_per_mtok"),
        ({"output_per_mtok": 1}, "input_per_mtok"),
        ({"input_per_mtok": 1}, "output_per_mtok"),
    ],
)
def test_bad_override_names_model_and_field(entry: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        PriceTable({"my-model": entry})
    assert f"my-model.{field}" in str(info.value)


def test_bad_override_shapes() -> None:
    with pytest.raises(ConfigError, match="pricing.my-model"):
        PriceTable({"my-model": [1, 2]})  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match="pricing"):
        PriceTable([("a", 1)])  # type: ignore[arg-type]


def test_table_is_immutable() -> None:
    with pytest.raises(AttributeError):
        TABLE._table = None  # type: ignore[misc]


def test_usd_micros_conversions() -> None:
    assert usd_to_micros(0.1) == 100_000
    assert usd_to_micros(1) == 1_000_000
    assert usd_to_micros(0.0000015) == 2  # half to even
    assert usd_to_micros(123456.789012) == 123_456_789_012
    assert micros_to_usd(2_500_000) == 2.5
    with pytest.raises(ValueError):
        usd_to_micros(float("nan"))


@given(st.integers(min_value=0, max_value=10**15 - 1))
def test_micros_round_trip(micros: int) -> None:
    assert usd_to_micros(micros_to_usd(micros)) == micros


def test_shipped_file_is_well_formed() -> None:
    fields = {
        "input_per_mtok",
        "output_per_mtok",
        "cached_input_per_mtok",
        "cache_write_per_mtok",
        "max_output_tokens",
    }
    for model, entry in SHIPPED.items():
        assert set(entry) <= fields, model
        assert {"input_per_mtok", "output_per_mtok"} <= set(entry), model


def test_prices_from_the_config_file() -> None:
    config = parse_config(
        yaml.safe_load(
            """
pricing:
  my-finetune:
    input_per_mtok: 0.3
    output_per_mtok: 1.2
    max_output_tokens: 2048
  gpt-4o:
    input_per_mtok: 2
    output_per_mtok: 8
"""
        )
    )
    table = PriceTable(config.pricing)
    assert table.worst_case("my-finetune", 1_000_000, None) == 300_000 + 2048 * 12 // 10 + 1
    assert table.cost("gpt-4o", 1_000_000, 1_000_000) == 10_000_000
    # the shipped cached rate survives an override that leaves it out
    assert table.cost("gpt-4o", 1_000_000, 0, cached_tokens=1_000_000) == 1_250_000
    assert PriceTable(default_config().pricing).cost("mock-1", 1_000_000, 1_000_000) == 3_000_000


def test_nan_from_the_config_file_is_named() -> None:
    config = parse_config(
        yaml.safe_load("pricing: {odd: {input_per_mtok: .nan, output_per_mtok: 1}}")
    )
    with pytest.raises(ConfigError, match=r"pricing\.odd\.input_per_mtok"):
        PriceTable(config.pricing)
