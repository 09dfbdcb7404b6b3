"""Guards over the driver registry: every driver has vectors, names match modules, and importing the
``drivers`` package stays free of the I/O libraries (pyserial, bleak, httpx)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from vectorlib import OWN_VECTORS, REPO, SHARED_VECTORS

from drivers import registry

NAMES = sorted(registry())


def test_registry_is_not_empty() -> None:
    assert {"tanita", "tanita_bc418", "ad_indicator", "mt_sics"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_every_driver_has_vectors(name: str) -> None:
    own = OWN_VECTORS / name
    shared = SHARED_VECTORS / f"{name}.jsonl"
    has_own = own.is_dir() and any(own.glob("*.jsonl"))
    assert has_own or shared.is_file(), f"driver {name!r}: add test vectors in tests/vectors/{name}/*.jsonl"


@pytest.mark.parametrize("name", NAMES)
def test_driver_name_is_module_name(name: str) -> None:
    spec = registry()[name]
    assert spec.name == name
    assert spec.parse.__module__ == f"drivers.{name}", "SPEC.parse must live in the driver's own module"
    assert spec.summary and spec.link


@pytest.mark.parametrize("name", NAMES)
def test_vector_files_name_their_driver(name: str) -> None:
    for path in sorted((OWN_VECTORS / name).glob("*.jsonl")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                doc = json.loads(line)
                assert doc.get("driver") == name, f"{path.name}:{n} names driver {doc.get('driver')!r}"


def test_import_drivers_loads_no_io_libraries() -> None:
    code = (
        "import sys, json, drivers\n"
        "drivers.registry()\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('serial', 'bleak', 'httpx'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []
