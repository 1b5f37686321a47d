"""The one door into Rust: only this module imports ``tollhouse._core``.

Typed wrappers over the compiled core.  Errors raised by the core are translated into
the project's error tree here (``_core.ConfigError`` -> ``tollhouse.errors.ConfigError``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from tollhouse import _core
from tollhouse.errors import ConfigError

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


# (end of tokens)


# ---------------------------------------------------------------------------------------
# redact
# ---------------------------------------------------------------------------------------


# (end of redact)


# ---------------------------------------------------------------------------------------
# policy
# ---------------------------------------------------------------------------------------


# (end of policy)


# ---------------------------------------------------------------------------------------
# cost
# ---------------------------------------------------------------------------------------


# (end of cost)
