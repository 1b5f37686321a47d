"""Routing: the model registry, fallbacks, retries, circuit breakers, failover policies.

``router.Router`` (one per worker, ``Gateway.router``) plans which deployments a request
tries; ``attempts.run`` is the pipeline's upstream-call stage that walks that plan.
"""
