"""Every module of the package imports on its own, first, in a fresh interpreter.

A circular import hides behind the order in which the app happens to import things; a
tool or test that imports ``tollhouse.gateway`` (or any other module) first must work
too.  One subprocess checks every module: it forgets the package between imports
(only the compiled core stays loaded, it cannot be imported twice).
"""

from __future__ import annotations

import subprocess
import sys

_SCRIPT = r"""
import importlib, pkgutil, sys
import tollhouse
names = sorted(
    m.name for m in pkgutil.walk_packages(tollhouse.__path__, "tollhouse.")
    if not m.name.endswith("__main__")  # runs the CLI
)
failed = []
for name in names:
    for loaded in [m for m in sys.modules if m == "tollhouse" or m.startswith("tollhouse.")]:
        if loaded != "tollhouse._core":
            del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed.append(f"{name}: {type(exc).__name__}: {exc}")
print(len(names))
print("\n".join(failed))
"""


def test_every_module_imports_first() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    count, failures = int(out[0]), [line for line in out[1:] if line]
    assert count > 50  # the walk found the package's modules
    assert failures == []
