"""The image build gets everything ``maturin build`` reads (no Docker needed to check)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def _copied() -> set[str]:
    out: set[str] = set()
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            out.update(p.rstrip("/") for p in line.split()[1:-1])
    return out


def test_build_stage_copies_the_crate_and_package() -> None:
    copied = _copied()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())
    needed = {"Cargo.toml", "Cargo.lock", "pyproject.toml", pyproject["project"]["readme"]}
    needed.add(cargo["lib"]["path"].split("/")[0])
    needed.add(pyproject["tool"]["maturin"]["python-source"])
    if cargo.get("bench"):  # cargo reads every declared bench target's file
        needed.add("benches")
    assert needed <= copied, needed - copied
    for src in (ROOT / "rust" / "src").rglob("*.rs"):  # files the crate embeds
        for path in re.findall(r'include_(?:str|bytes)!\("([^"]+)"\)', src.read_text()):
            target = (src.parent / path).resolve().relative_to(ROOT)
            assert target.parts[0] in copied, f"{src.name} embeds {target}, not copied"


def test_dockerignore_keeps_build_output_out() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "target/" in ignored and ".venv/" in ignored
