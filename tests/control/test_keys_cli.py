"""``tollhouse keys create | list | revoke`` on a real SQLite store."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tollhouse.cli import main
from tollhouse.errors import InvalidKey
from tollhouse.guard.keys import KeyCache, hash_key, is_well_formed
from tollhouse.store import open_store


@pytest.fixture
def config(tmp_path: Path) -> str:
    path = tmp_path / "tollhouse.yaml"
    path.write_text(f"store: sqlite:///{tmp_path}/keys.db\n")
    return str(path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_create_json_list_revoke(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(
        capsys,
        *("keys", "create", "--config", config, "--name", "ci", "--budget-usd", "12.5"),
        *("--budget-period", "weekly", "--rpm", "60", "--tpm", "5000"),
        *("--models", "gpt-4o-mini, mock-1", "--team", "ml", "--json"),
    )
    assert rc == 0
    made = json.loads(out)
    assert made["workspace_id"] == "default"
    assert is_well_formed(made["key"]) and made["hash"] == hash_key(made["key"])
    assert made["name"] == "ci" and made["limit"] == 12.5 and made["limit_reset"] == "weekly"
    assert (made["rpm"], made["tpm"], made["team"]) == (60, 5000, "ml")
    assert made["models"] == ["gpt-4o-mini", "mock-1"]

    rc, out, _ = run(
        capsys, "keys", "create", "--config", config, "--name", "second", "--workspace", "default"
    )
    assert rc == 0
    raw2 = next(ln.split()[1] for ln in out.splitlines() if ln.strip().startswith("key "))
    assert is_well_formed(raw2) and "only time" in out

    rc, out, _ = run(capsys, "keys", "list", "--config", config, "--json")
    listed = json.loads(out)["data"]
    assert [k["name"] for k in listed] == ["ci", "second"]
    assert made["key"] not in out and raw2 not in out
    rc, out, _ = run(capsys, "keys", "list", "--config", config)
    assert "ci" in out and "active" in out and raw2 not in out

    rc, out, _ = run(capsys, "keys", "revoke", made["hash"][:12], "--config", config)
    assert rc == 0 and "revoked" in out
    rc, out, _ = run(capsys, "keys", "revoke", made["hash"], "--config", config)
    assert rc == 0 and "already revoked" in out

    async def check() -> None:
        store = open_store(f"sqlite:///{Path(config).parent}/keys.db")
        await store.open()
        cache = KeyCache(store)
        await cache.start()
        try:
            with pytest.raises(InvalidKey):
                cache.authenticate(made["key"])
            assert cache.authenticate(raw2).name == "second"
        finally:
            await cache.stop()
            await store.close()

    asyncio.run(check())


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--budget-usd", "-1"], "--budget-usd"),
        (["--budget-usd", "nan"], "--budget-usd"),
        (["--budget-period", "daily"], "--budget-period"),
        (["--rpm", "0"], "--rpm"),
        (["--models", " , "], "--models"),
        (["--workspace", "ws_nope"], "--workspace"),
        (["--workspace", ""], "--workspace"),
    ],
)
def test_create_rejects_bad_flags(
    config: str, capsys: pytest.CaptureFixture[str], args: list[str], flag: str
) -> None:
    rc, out, err = run(capsys, "keys", "create", "--config", config, "--name", "x", *args)
    assert rc == 2 and out == ""
    assert err.startswith(f"tollhouse: {flag}:")


def test_revoke_errors(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(capsys, "keys", "revoke", "abc", "--config", config)
    assert rc == 2 and "8 characters" in err
    rc, _, err = run(capsys, "keys", "revoke", "0" * 64, "--config", config)
    assert rc == 1 and "no key" in err


def test_list_empty(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "keys", "list", "--config", config)
    assert rc == 0 and "no keys" in out


def test_the_installed_command(config: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tollhouse", "keys", "create", "--config", config, "--name", "sp"]
        + ["--json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "PYTHONWARNINGS": "error"},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert {"key", "hash", "name"} <= set(json.loads(proc.stdout))
