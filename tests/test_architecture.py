"""The layering of docs/architecture.md holds for every import in kiel/, and
its import table is the code's (scripts/imports.py)."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parent.parent
SCRIPT = TOP / "scripts" / "imports.py"


def imports_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=60, check=False)


def test_no_import_breaks_the_layering_and_the_table_is_the_codes():
    r = imports_script("--check")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("module, layer", [
    ("kiel.cli", "cli"), ("kiel.cli_replicas", "cli"), ("kiel.cli_export", "cli"),
    ("kiel.__main__", "cli"), ("kiel.renewal", "renewal"), ("kiel.renewal.worker", "renewal"),
    ("kiel.report", "readers"), ("kiel.oai.index", "readers"), ("kiel.readers", "readers"),
    ("kiel.export", "readers"), ("kiel.export.mapping", "readers"),
    ("kiel.replicas", "readers"), ("kiel.replicas.audit", "readers"),
    ("kiel", "nouns"), ("kiel.notes", "nouns"), ("kiel.platforms.zenodo", "nouns"),
    ("kiel.replies", "nouns"), ("kiel.something_new", "nouns"),
])
def test_a_module_finds_its_layer_by_its_name(module: str, layer: str):
    assert runpy.run_path(str(SCRIPT))["layer_of"](module) == layer


def test_an_import_against_the_rule_is_named_wherever_it_stands(tmp_path: Path):
    files = {
        "__init__.py": "",
        "notes.py": "def f():\n    from kiel import report\n",
        "store.py": ("from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
                     "    from kiel.renewal.run import Renewal\n"),
        "report.py": "from kiel import notes, show\n",
        "show.py": "from . import store\n",
        "renewal/__init__.py": "from .run import renew\n",
        "renewal/run.py": ("from kiel import store\nfrom kiel.show import view\n\n\n"
                           "def f():\n    from kiel.oai import refresh\n"),
        "oai/__init__.py": "",
        "export/__init__.py": "from ..cli_export import export\n",
        "cli_export.py": "import kiel.export\nimport kiel.renewal\n",
    }
    for name, body in files.items():
        path = tmp_path / "kiel" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body, encoding="utf-8")
    r = imports_script("--root", str(tmp_path), "--violations")
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        "layering: kiel.export (readers) imports kiel.cli_export (cli): "
        "readers may import only nouns, readers",
        "layering: kiel.notes (nouns) imports kiel.report (readers) (inside a function): "
        "nouns may import only nouns",
        "layering: kiel.renewal.run (renewal) imports kiel.show (readers): "
        "renewal may import only nouns, renewal",
        "layering: kiel.store (nouns) imports kiel.renewal.run (renewal) (for typing): "
        "nouns may import only nouns",
    ]
