"""Fixtures shared by every test package (real servers started by the session)."""

from tests.support.postgres import postgres_server, postgres_url
from tests.support.redis import redis_server, redis_url

__all__ = ["postgres_server", "postgres_url", "redis_server", "redis_url"]
