from pathlib import Path

import pytest

from tollhouse.config import Secret, load_config, parse_config
from tollhouse.errors import ConfigError

GOOD = {
    "server": {"host": "127.0.0.1", "port": 4000, "workers": 1},
    "store": "sqlite:///./tollhouse.db",
    "counters": "memory",
    "admin_key": "env:TEST_ADMIN",
    "providers": {
        "up": {
            "kind": "openai_compatible",
            "base_url": "http://127.0.0.1:18000/v1",
            "api_key": "env:UP_KEY",
        }
    },
    "models": {"gpt-4o-mini": {"deployments": [{"provider": "up", "model": "gpt-4o-mini"}]}},
    "pricing": {"gpt-4o-mini": {"input_per_mtok": 0.15, "output_per_mtok": 0.60}},
}
ENV = {"TEST_ADMIN": "adm-secret", "UP_KEY": "sk-up"}


def test_parses_the_documented_example() -> None:
    cfg = parse_config(GOOD, env=ENV)
    assert cfg.admin_key is not None and cfg.admin_key.get() == "adm-secret"
    assert cfg.providers["up"].api_key == Secret("sk-up")
    assert cfg.providers["up"].base_url == "http://127.0.0.1:18000/v1"
    assert cfg.models["gpt-4o-mini"].deployments[0].provider == "up"
    assert cfg.pricing["gpt-4o-mini"]["output_per_mtok"] == 0.60


def test_secrets_mask_themselves() -> None:
    cfg = parse_config(GOOD, env=ENV)
    assert "adm-secret" not in repr(cfg)
    assert "sk-up" not in repr(cfg) and "sk-up" not in str(cfg.providers["up"])


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"admin_key": "env:MISSING_VAR"}, "admin_key: environment variable MISSING_VAR"),
        ({"server": {"port": "x"}}, "server.port: expected an integer"),
        ({"server": {"workers": 0}}, "server.workers: must be"),
        ({"fail_mode": "maybe"}, "fail_mode:"),
        ({"counters": "memcached://x"}, "counters:"),
        ({"store": "mysql://x"}, "store:"),
        ({"bogus": 1}, "bogus: unknown key"),
        ({"providers": {"up": {"kind": "nope"}}}, "providers.up.kind"),
        ({"providers": {"up": {"kind": "openai_compatible"}}}, "providers.up.base_url: required"),
        (
            {"models": {"m": {"deployments": [{"provider": "ghost", "model": "x"}]}}},
            "models.m.deployments[0].provider: unknown provider 'ghost'",
        ),
        ({"models": {"m": {"deployments": []}}}, "models.m.deployments"),
        (
            {"pricing": {"m": {"input_per_mtok": -1, "output_per_mtok": 1}}},
            "pricing.m.input_per_mtok",
        ),
        ({"pricing": {"m": {"input_per_mtok": 1}}}, "pricing.m: input_per_mtok and output"),
    ],
)
def test_mistakes_name_the_key(patch: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({**GOOD, **patch}, env=ENV)
    assert message in str(info.value)


def test_load_reports_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("server: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "none.yaml")


def test_default_config_serves_the_mock_model() -> None:
    cfg = load_config(None)
    assert cfg.models["mock-1"].deployments[0].provider == "mock"
    assert cfg.providers["mock"].kind == "mock"
