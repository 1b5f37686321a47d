"""Provider adapters, one module each; ``build_providers`` maps config to instances.

An unknown kind is refused at start-up with a config error rather than at request time.
"""

from __future__ import annotations

from tollhouse.config import Config, ProviderConfig
from tollhouse.errors import ConfigError
from tollhouse.providers.anthropic import AnthropicProvider
from tollhouse.providers.azure import AzureProvider
from tollhouse.providers.base import Call, Provider, Reply
from tollhouse.providers.gemini import GeminiProvider
from tollhouse.providers.mock import MockProvider
from tollhouse.providers.openai import OpenAIProvider

__all__ = ["Call", "Provider", "Reply", "build_provider", "build_providers"]

_KINDS: dict[str, type[Provider]] = {
    "openai": OpenAIProvider,
    "openai_compatible": OpenAIProvider,
    "mock": MockProvider,
    "anthropic": AnthropicProvider,
    "gemini": GeminiProvider,
    "azure": AzureProvider,
}


def build_provider(config: ProviderConfig) -> Provider:
    cls = _KINDS.get(config.kind)
    if cls is None:
        raise ConfigError(f"providers.{config.name}.kind: {config.kind!r} is not supported yet")
    return cls(config)


def build_providers(config: Config) -> dict[str, Provider]:
    return {name: build_provider(p) for name, p in config.providers.items()}
