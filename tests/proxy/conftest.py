"""A test upstream and a real ``tollhouse serve`` in front of it, shared per module."""

from tests.support.stack_fixtures import _reset_upstream, stack, upstream

__all__ = ["_reset_upstream", "stack", "upstream"]
