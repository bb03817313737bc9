"""Escaping and the redist: reversible, and no name ever leaves store/."""

from __future__ import annotations

import hashlib
import os

from hypothesis import given, settings
from hypothesis import strategies as st

from kiel.escape import escape, inside, is_cut, unescape
from kiel.redist import record_path, record_sets


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=300))
def test_escape_is_one_safe_name(value):
    name = escape(value)
    assert "/" not in name and "\x00" not in name
    assert name not in (".", "..") and not name.startswith(".")
    assert len(name.encode()) <= 240
    if not is_cut(name):
        assert unescape(name) == value
        # only a cut makes "%~": an escaped % is always followed by two hex digits
        assert "%~" not in name


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=300), st.text(min_size=0, max_size=40))
def test_no_value_forges_a_cut_name(value, tail):
    """Whatever a stranger writes, its name is never another value's cut name."""
    long = "http://x/" + value + "a" * 240
    cut = escape(long)
    assert is_cut(cut)
    digest = cut[-16:]
    kept = cut[:-16].removesuffix("~").removesuffix("%")  # whatever the form of the mark
    prefix = unescape(kept)
    for forged in (prefix + "~" + digest, prefix + "%~" + digest, prefix + tail,
                   kept + "%~" + digest, cut):
        name = escape(forged)
        assert name != cut or forged == long


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=400))
def test_record_paths_stay_inside_the_store(tmp_path_factory, rid):
    root = tmp_path_factory.mktemp("store")
    path = os.path.join(root, record_path(rid))
    assert inside(root, path)
    assert os.path.normpath(path) == path.rstrip("/")


def test_design_examples():
    assert escape("http://x.org/a b") == "http%3A%2F%2Fx.org%2Fa%20b"
    assert escape("..") == "%2E." and escape(".") == "%2E"
    url = "http://x/" + "a" * 300
    cut = escape(url)
    assert cut == ("http%3A%2F%2Fx%2F" + "a" * 183 + "%~"
                   + hashlib.sha256(url.encode()).hexdigest()[:16])
    assert len(cut) == 218 and is_cut(cut)
    # a cut never splits a %XX triplet, and keeps at most 200 bytes
    cut2 = escape("http://x/" + "é" * 200)
    body = cut2[:-18]
    assert len(body) <= 200 and cut2[-18:-16] == "%~"
    assert all(body[i + 1:i + 3].isalnum() for i, c in enumerate(body) if c == "%")
    # 240 bytes is not cut; 241 is
    assert not is_cut(escape("a" * 240)) and is_cut(escape("a" * 241))
    # the old form (a bare "~" and the hash) is an ordinary, reversible name
    old = "a" * 200 + "~" + "0" * 16
    assert escape(old) == old and not is_cut(old)


def test_the_forgery_of_the_issue_no_longer_takes_a_directory():
    """An id equal to another's cut name, as written before, took its directory."""
    victim = "RePEc:aaa:wpaper:" + "v" * 300
    cut = record_path(victim).rsplit("/", 1)[1]
    forger = "RePEc:aaa:wpaper:" + cut.replace("%~", "~")
    assert record_path(forger) != record_path(victim)
    url = "http://example.org/" + "p/" * 150
    forged_url = unescape(escape(url)[:-18]) + "~" + escape(url)[-16:]
    assert escape(forged_url) != escape(url)


def test_redist():
    assert record_path("RePEc:aaa:wpaper:1") == "RePEc/aaa/wpaper/1"
    assert record_path("info:lib/RePEc:BME:WPaper:v:15/y:2") == "RePEc/bme/wpaper/v%3A15%2Fy%3A2"
    assert record_path("repec:eee:jfinec:v:1:y:1974:i:1:p:1-2") == \
        "RePEc/eee/jfinec/v%3A1%3Ay%3A1974%3Ai%3A1%3Ap%3A1-2"
    assert record_path("RePEc::wpaper:1") == "other/RePEc%3A%3Awpaper%3A1"
    assert record_path("doi:10.1/x") == "other/doi%3A10.1%2Fx"
    assert record_path("../../etc") == "other/%2E.%2F..%2Fetc"
    assert record_sets("RePEc:AAA:wpaper:1") == ["RePEc", "RePEc:aaa", "RePEc:aaa:wpaper"]
