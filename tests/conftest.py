"""Fixtures shared by every test package (real servers started by the session)."""

from tests.support.redis import redis_server, redis_url

__all__ = ["redis_server", "redis_url"]
