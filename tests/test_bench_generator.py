"""The benchmark collection generator (bench/generate.py): seeded and in proportion."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import sys

import pytest
from lxml import etree

_PATH = os.path.join(os.path.dirname(__file__), os.pardir, "bench", "generate.py")
_spec = importlib.util.spec_from_file_location("bench_generate", _PATH)
assert _spec is not None and _spec.loader is not None
generate = importlib.util.module_from_spec(_spec)
sys.modules["bench_generate"] = generate
_spec.loader.exec_module(generate)

AMF = "{http://amf.openlib.org}"
HANDLE = re.compile(r"^RePEc:[a-z]{3}:[a-z]{6}:[^:].*$")


def _tree_digest(root: str) -> str:
    h = hashlib.sha256()
    for d, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(files):
            p = os.path.join(d, name)
            h.update(os.path.relpath(p, root).encode() + b"\0")
            with open(p, "rb") as f:
                h.update(hashlib.sha256(f.read()).digest())
    return h.hexdigest()


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("coll")
    # No bodies: proportions and records only, so the test stays fast.
    m = generate.write(generate.plan(2000, seed=7, port=18480), str(out), bodies=False)
    return str(out), m


def test_same_seed_same_bytes(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    ma = generate.write(generate.plan(120, seed=3, port=18480), str(a))
    mb = generate.write(generate.plan(120, seed=3, port=18480), str(b))
    assert ma == mb
    assert _tree_digest(str(a)) == _tree_digest(str(b))
    other = generate.plan(120, seed=4, port=18480)
    assert generate.manifest(other, 0, 0).digest != ma.digest


def test_proportions(small):
    _, m = small
    assert m.records == 2000 and m.url_slots == 4000
    assert m.shared_urls / m.distinct_urls == pytest.approx(0.10, abs=0.01)
    assert m.not_found / m.distinct_urls == pytest.approx(0.05, abs=0.005)
    assert m.redirects / m.distinct_urls == pytest.approx(0.03, abs=0.005)
    assert m.requests == m.distinct_urls + m.redirects


def test_urls_spread_over_32_loopback_hosts(small):
    out, m = small
    with open(os.path.join(out, "urls.txt")) as f:
        urls = f.read().split()
    assert len(urls) == len(set(urls)) == m.distinct_urls
    hosts = {re.match(r"http://(127\.0\.0\.\d+):18480/", u).group(1) for u in urls}
    assert hosts == {f"127.0.0.{k}" for k in range(1, 33)}


def test_amf_records_look_like_repec(small):
    out, m = small
    ids, files, texts_per_file = [], 0, []
    for d, _, names in os.walk(os.path.join(out, "amf")):
        for name in names:
            assert name.endswith(".amf.xml")
            root = etree.parse(os.path.join(d, name)).getroot()
            assert root.tag == AMF + "amf"
            texts = root.findall(AMF + "text")
            texts_per_file.append(len(texts))
            files += 1
            for t in texts:
                ids.append(t.get("id"))
                assert t.findtext(AMF + "displaypage").startswith("http://127.0.0.")
                assert t.findtext(f"{AMF}file/{AMF}format") == "application/pdf"
                assert t.findtext(f"{AMF}file/{AMF}url").endswith(".pdf")
    assert len(ids) == len(set(ids)) == m.records
    assert all(HANDLE.match(i) for i in ids)
    assert files == m.amf_files and max(texts_per_file) > 1


def test_bodies_404s_and_redirects_on_disk(tmp_path):
    p = generate.plan(300, seed=5, port=18480)
    m = generate.write(p, str(tmp_path))
    www = tmp_path / "www"
    for o in p.objects:
        if o.status == 404:
            assert not (www / o.path.lstrip("/")).exists()
        elif o.status == 301:
            assert not (www / o.path.lstrip("/")).exists()
            body = (www / o.target_path.lstrip("/")).read_bytes()
            assert f"{o.path} {o.target};" in (tmp_path / "redirects.map").read_text()
        else:
            body = (www / o.path.lstrip("/")).read_bytes()
        if o.status != 404:
            assert len(body) == o.size
            if o.kind == "pdf":
                assert body.startswith(b"%PDF-") and 20_000 <= len(body) <= 2_000_000
            else:
                assert body.startswith(b"<!DOCTYPE html>") and 28_000 <= len(body) <= 32_000
    assert m.www_bytes == m.body_bytes
