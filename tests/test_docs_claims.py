"""Statements of the docs that the code decides, held to the code."""

from __future__ import annotations

import inspect
from pathlib import Path

from kiel.oai import formats

TOP = Path(__file__).resolve().parent.parent


def read(name: str) -> str:
    return " ".join((TOP / name).read_text(encoding="utf-8").split())


def test_oai_dc_is_made_from_the_version_alone_as_the_code_does():
    assert list(inspect.signature(formats.oai_dc_metadata).parameters) == ["version"]
    doc = read("docs/oai.md")
    assert "from the stored version and the list of archived objects" not in doc
    assert "from the stored version alone" in doc


def test_readme_says_what_scripts_test_installs_and_what_a_retry_leaves():
    readme = read("README.md")
    try_it = readme[readme.index("## Try it"):readme.index("## Install")]
    assert "`scripts/test` also installs Debian's `chromium` through apt" in try_it
    assert "one file per attempt" not in readme  # a retried attempt is a notes line
    assert "only its last try becomes a file" in readme
