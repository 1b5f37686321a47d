"""Tollhouse: a self-hosted, OpenAI-compatible gateway for LLM traffic."""

__version__ = "0.1.0"
