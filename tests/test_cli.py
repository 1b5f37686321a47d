import subprocess
import sys
from pathlib import Path

from tollhouse import __version__


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tollhouse", *args], capture_output=True, text=True, timeout=60
    )


def test_version_and_help() -> None:
    assert run("--version").stdout.strip() == f"tollhouse {__version__}"
    out = run("--help")
    assert out.returncode == 0
    assert "check-config" in out.stdout


def test_check_config_accepts_good_and_names_bad_key(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("providers:\n  m: {kind: mock}\nmodels:\n  a: {deployments: [{provider: m}]}\n")
    ok = run("check-config", "--config", str(good))
    assert ok.returncode == 0, ok.stderr
    assert "config ok" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("server: {port: 99999}\n")
    res = run("check-config", "--config", str(bad))
    assert res.returncode == 2
    assert "server.port" in res.stderr


def test_check_config_checks_the_alerts_section(tmp_path: Path) -> None:
    bad = tmp_path / "alerts.yaml"
    bad.write_text("alerts: {interval_s: 0}\n")
    res = run("check-config", "--config", str(bad))
    assert res.returncode == 2
    assert "alerts.interval_s" in res.stderr
