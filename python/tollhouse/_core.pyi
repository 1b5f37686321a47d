"""Type stubs for the compiled core (``rust/src/py``)."""

from collections.abc import Mapping
from typing import final

__version__: str

class ConfigError(ValueError): ...

# -- tokens ------------------------------------------------------------------------------

# (end of tokens)

# -- redact ------------------------------------------------------------------------------

# (end of redact)

# -- policy ------------------------------------------------------------------------------

# (end of policy)

# -- cost ------------------------------------------------------------------------------

@final
class Price:
    @property
    def input_micros_per_mtok(self) -> int: ...
    @property
    def output_micros_per_mtok(self) -> int: ...
    @property
    def cached_input_micros_per_mtok(self) -> int: ...
    @property
    def cache_write_micros_per_mtok(self) -> int: ...
    @property
    def max_output_tokens(self) -> int | None: ...

@final
class PriceTable:
    def __init__(
        self, overrides: Mapping[str, Mapping[str, float | int]] | None = None
    ) -> None: ...
    def has(self, model: str) -> bool: ...
    def models(self) -> list[str]: ...
    def price(self, model: str) -> Price | None: ...
    def cost(
        self,
        model: str,
        prompt_tokens: int,
        completion_tokens: int,
        cached_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> int | None: ...
    def worst_case(
        self, model: str, prompt_tokens: int, max_output_tokens: int | None = None
    ) -> int | None: ...
    def __len__(self) -> int: ...
    def __contains__(self, model: str) -> bool: ...

# (end of cost)
