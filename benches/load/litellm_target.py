"""The LiteLLM proxy as a target of ``overhead.py`` (``--targets ...,litellm``).

LiteLLM is not a dependency of Tollhouse: install it wherever you like, e.g. in its own
virtualenv so its pins do not touch the project's::

    python3 -m venv /tmp/litellm && /tmp/litellm/bin/pip install 'litellm[proxy]'
    python benches/load/overhead.py --targets direct,tollhouse,litellm \\
        --litellm-bin /tmp/litellm/bin/litellm

The proxy runs with one worker, no database (only the master key authenticates, the
closest it gets to Tollhouse's key auth without Postgres), the bundled model cost map
instead of a download, no telemetry, no callbacks, in front of the same mock upstream.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import yaml

MASTER_KEY = "sk-litellm-bench"

# Keep LiteLLM off the network (cost map, telemetry) and quiet.
OFFLINE_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_TELEMETRY": "False",
    "LITELLM_LOG": "ERROR",
    "LITELLM_MODE": "PRODUCTION",
    "DISABLE_ADMIN_UI": "True",
    "NO_DOCS": "True",
    "NO_PROXY": "127.0.0.1,localhost",
}


def find_litellm(explicit: str | None) -> str:
    path = explicit or os.environ.get("LITELLM_BIN") or shutil.which("litellm")
    if not path or not Path(path).exists():
        raise SystemExit(
            "litellm target: no 'litellm' executable; pip install 'litellm[proxy]' "
            "(own venv is best) and pass --litellm-bin PATH"
        )
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RuntimeError(f"litellm exited with {proc.returncode}:\n{tail}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"litellm did not listen on {port} within {timeout} s")


def litellm_target(
    workdir: Path, upstream: str, binary: str, timeout: float = 180.0
) -> tuple[subprocess.Popen[bytes], int, str]:
    """Start the LiteLLM proxy for ``gpt-4o-mini`` -> ``upstream``; (process, port, key)."""
    config = {
        "model_list": [
            {
                "model_name": "gpt-4o-mini",
                "litellm_params": {
                    "model": "openai/gpt-4o-mini",
                    "api_base": f"{upstream}/v1",
                    "api_key": "sk-bench",
                },
            }
        ],
        "litellm_settings": {"telemetry": False, "drop_params": True, "callbacks": []},
        "general_settings": {"master_key": MASTER_KEY, "disable_spend_logs": True},
    }
    path = workdir / "litellm.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    log = workdir / "litellm.log"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
    env.update(OFFLINE_ENV)
    cmd = [binary, "--config", str(path), "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--num_workers", "1"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
    _wait(port, proc, log, timeout)
    return proc, port, MASTER_KEY
