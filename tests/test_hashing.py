"""One chunked hashing loop (kiel.hashing) serves stored files, versions and bundle members."""

from __future__ import annotations

import ast
import hashlib
import io
import zipfile
from pathlib import Path

from kiel import hashing, store
from kiel.platforms import ManifestFile, check_bundle, digest_file

KIEL = Path(__file__).resolve().parent.parent / "kiel"
BODY = bytes(range(256)) * 9000 + b"tail"  # more than two chunks, not a whole number of them


def test_a_file_over_several_chunks_hashes_as_hashlib_does(tmp_path):
    p = tmp_path / "body"
    p.write_bytes(BODY)
    assert len(BODY) > 2 * hashing.CHUNK
    want = {alg: hashlib.new(alg, BODY).hexdigest() for alg in ("sha256", "sha1", "md5")}
    assert hashing.digest_file(str(p), ("sha256", "sha1", "md5")) == (len(BODY), want)
    assert digest_file(str(p), ("md5", "sha1")) == (len(BODY), {"md5": want["md5"],
                                                                "sha1": want["sha1"]})
    assert store.sha256_file(str(p)) == want["sha256"]
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert store.sha256_file(str(empty)) == hashlib.sha256(b"").hexdigest()


def test_chunks_never_read_more_than_asked():
    f = io.BytesIO(BODY)
    got = b"".join(hashing.chunks(f.read, hashing.CHUNK + 5))
    assert got == BODY[:hashing.CHUNK + 5] and f.tell() == hashing.CHUNK + 5


def test_a_bundle_member_is_hashed_and_one_being_stopped_between_chunks(tmp_path):
    z = tmp_path / "bundle.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("data/a.bin", BODY)
    sha = hashlib.sha256(BODY).hexdigest()
    ok = check_bundle(str(z), [ManifestFile("a.bin", len(BODY), "http://x/a", sha256=sha)])
    assert ok["a.bin"].verdict.status == "ok" and ok["a.bin"].size == len(BODY)
    assert ok["a.bin"].found["sha256"] == sha
    # A run being stopped is asked between chunks: one chunk is read, no more.
    asked = []

    def stop() -> bool:
        asked.append(1)
        return len(asked) > 1

    out = check_bundle(str(z), [ManifestFile("a.bin", len(BODY), "http://x/a", sha256=sha)],
                       stop=stop)
    assert out["a.bin"].verdict.status == "unchecked", out
    assert out["a.bin"].error == "not checked: the run is stopping"
    assert out["a.bin"].size == hashing.CHUNK


def test_only_kiel_hashing_and_the_body_sink_read_and_hash_in_a_loop():
    """No other module has its own loop that reads chunks and updates hashers."""
    loops = []
    for path in sorted(KIEL.rglob("*.py")):
        rel = path.relative_to(KIEL).as_posix()
        if rel in ("hashing.py", "fetch.py"):  # fetch.BodySink hashes as it writes
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.While, ast.For)):
                called = {c.func.attr for c in ast.walk(node)
                          if isinstance(c, ast.Call) and isinstance(c.func, ast.Attribute)}
                if {"read", "update"} <= called:
                    loops.append(f"{rel}:{node.lineno}")
    assert loops == [], loops
