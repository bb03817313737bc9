"""A fetched file against what its platform declared.

Like warcio's digest check, three outcomes: ``ok`` (a declared checksum
matched, and the size where declared), ``mismatch`` (the size or a
checksum differs: the file is kept as fetched and the note says so),
``unchecked`` (the platform declared nothing both sides can compare).
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterable, Mapping

from kiel.platforms.types import (
    ALGORITHMS,
    FileOutcome,
    Manifest,
    ManifestFile,
    Verdict,
)

_CHUNK = 1 << 20


def check(file: ManifestFile, size: int | None, found: Mapping[str, str]) -> Verdict:
    """Judge a fetched body of ``size`` bytes whose checksums Kiel computed
    (``found``, by algorithm) against the platform's declaration."""
    if file.size is not None and size is not None and size != file.size:
        return Verdict("mismatch", "size", str(file.size), str(size),
                       "the size differs from the platform's")
    declared = file.declared()
    compared: list[str] = []
    for alg in ALGORITHMS:  # strongest first
        expected = declared.get(alg)
        got = found.get(alg)
        if not expected or not got:
            continue
        if got.lower() != expected.lower():
            return Verdict("mismatch", alg, expected, got.lower(),
                           f"{alg} differs from the platform's")
        compared.append(alg)
    if compared:
        return Verdict("ok", compared[0], declared[compared[0]], found[compared[0]].lower())
    if declared:
        algs = ", ".join(sorted(declared))
        return Verdict("unchecked", None, None, None,
                       f"the platform declares {algs}, which was not computed")
    if file.size is not None and size is not None:
        return Verdict("unchecked", "size", str(file.size), str(size),
                       "the size matches; the platform declares no checksum")
    return Verdict("unchecked", None, None, None, "the platform declares no checksum")


def needed(file: ManifestFile) -> tuple[str, ...]:
    """The algorithms to compute for ``file``: the ones its platform
    declares (Kiel's notes already hold sha256 and sha1 of every body; md5
    is computed only where a platform declares it)."""
    return tuple(alg for alg in ALGORITHMS if getattr(file, alg))


def digest_file(path: str, algorithms: Iterable[str] = ALGORITHMS) -> tuple[int, dict[str, str]]:
    """Size and checksums of a stored file, read once in chunks."""
    hashers = {alg: hashlib.new(alg) for alg in dict.fromkeys(algorithms)}
    size = 0
    with open(path, "rb") as f:
        while True:
            chunk = f.read(_CHUNK)
            if not chunk:
                break
            size += len(chunk)
            for h in hashers.values():
                h.update(chunk)
    return size, {alg: h.hexdigest() for alg, h in hashers.items()}


def check_bundle(path: str, manifest: Manifest | Iterable[ManifestFile],
                 max_member: int = 64 * 1024**3) -> dict[str, FileOutcome]:
    """Each file of ``manifest`` checked inside the stored bundle zip at
    ``path``, by path (or, failing that, by the only member with its base
    name: Dataverse puts files under folders of its own). A file the zip
    does not hold is ``unchecked`` with an error; a zip that cannot be read
    leaves every file so. ``file`` of each outcome is None: the bytes are in
    the bundle."""
    files = manifest.files if isinstance(manifest, Manifest) else tuple(manifest)
    out: dict[str, FileOutcome] = {}
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as e:
        for f in files:
            out[f.path] = FileOutcome(None, error=f"bundle not readable: {e}")
        return out
    with zf:
        members = {i.filename: i for i in zf.infolist() if not i.is_dir()}
        by_base: dict[str, list[zipfile.ZipInfo]] = {}
        for member_info in members.values():
            by_base.setdefault(member_info.filename.rsplit("/", 1)[-1], []).append(member_info)
        for f in files:
            info: zipfile.ZipInfo | None = members.get(f.path)
            if info is None:
                same = by_base.get(f.path.rsplit("/", 1)[-1], [])
                info = same[0] if len(same) == 1 else None
            if info is None:
                out[f.path] = FileOutcome(Verdict("unchecked", detail="not in the bundle"),
                                          error="not in the bundle")
                continue
            if info.file_size > max_member:
                out[f.path] = FileOutcome(Verdict("unchecked", detail="member too large"),
                                          size=info.file_size, error="member too large")
                continue
            hashers = {alg: hashlib.new(alg) for alg in ALGORITHMS}
            size = 0
            try:
                with zf.open(info) as member:
                    while True:
                        chunk = member.read(_CHUNK)
                        if not chunk:
                            break
                        size += len(chunk)
                        for h in hashers.values():
                            h.update(chunk)
            except (OSError, zipfile.BadZipFile, EOFError, ValueError) as e:
                out[f.path] = FileOutcome(Verdict("unchecked", detail=str(e)), error=str(e))
                continue
            found = {alg: h.hexdigest() for alg, h in hashers.items()}
            out[f.path] = FileOutcome(check(f, size, found), size, found)
    return out
