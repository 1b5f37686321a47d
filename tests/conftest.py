"""Fixtures shared by every test package (real servers started by the session)."""

import os

from hypothesis import settings
from tests.support.postgres import postgres_server, postgres_url
from tests.support.redis import redis_server, redis_url

# CI runs property tests derandomised so a run is reproducible; set
# TOLLHOUSE_HYPOTHESIS=explore locally to search fresh examples.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("explore", print_blob=True)
settings.load_profile(os.environ.get("TOLLHOUSE_HYPOTHESIS", "ci"))

__all__ = ["postgres_server", "postgres_url", "redis_server", "redis_url"]
