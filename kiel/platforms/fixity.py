"""A fetched file against what its platform declared.

Like warcio's digest check, three outcomes: ``ok`` (a declared checksum
matched, and the size where declared), ``mismatch`` (the size or a
checksum differs: the file is kept as fetched and the note says so),
``unchecked`` (the platform declared nothing both sides can compare).
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Callable, Iterable, Mapping

from kiel import hashing
from kiel.platforms.types import (
    ALGORITHMS,
    FileOutcome,
    Limits,
    Manifest,
    ManifestFile,
    Verdict,
)


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
    return hashing.digest_file(path, algorithms)


class _Lie(Exception):
    """A member inflates to more than was declared for it."""


def check_bundle(path: str, manifest: Manifest | Iterable[ManifestFile],
                 max_member: int = 64 * 1024**3, max_total: int | None = None,
                 stop: Callable[[], bool] | None = None) -> dict[str, FileOutcome]:
    """Each file of ``manifest`` checked inside the stored bundle zip at
    ``path``, by path (or, failing that, by the only member with its base
    name: Dataverse puts files under folders of its own). A file the zip
    does not hold is ``unchecked`` with an error; a zip that cannot be read
    leaves every file so. ``file`` of each outcome is None: the bytes are in
    the bundle.

    A zip is read as a hostile input: a member whose own header disagrees
    with the size the platform declared is a mismatch before one byte is
    inflated, and one that inflates past the declared size (or past the
    header's, where the platform declares none) is stopped at the first
    byte too many. Everything inflated together stays under ``max_total``
    (the sizes declared, by default); ``stop`` is asked between chunks, so
    a run being stopped does not wait for a bundle."""
    files = manifest.files if isinstance(manifest, Manifest) else tuple(manifest)
    out: dict[str, FileOutcome] = {}
    if max_total is None:
        max_total = Limits().max_total_size
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile, ValueError, NotImplementedError,
            RuntimeError) as e:
        for f in files:
            out[f.path] = FileOutcome(None, error=f"bundle not readable: {e}")
        return out
    spent = 0
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
            if f.size is not None and info.file_size != f.size:
                out[f.path] = FileOutcome(
                    Verdict("mismatch", "size", str(f.size), str(info.file_size),
                            "the bundle's header declares another size than the platform"),
                    size=info.file_size,
                    error=f"the bundle declares {info.file_size} bytes, the platform {f.size}; "
                          "not inflated")
                continue
            limit = f.size if f.size is not None else info.file_size
            if limit > max_member:
                out[f.path] = FileOutcome(Verdict("unchecked", detail="member too large"),
                                          size=info.file_size, error="member too large")
                continue
            if stop is not None and stop():
                out[f.path] = FileOutcome(Verdict("unchecked", detail="stopped"),
                                          error="not checked: the run is stopping")
                continue
            if spent + limit > max_total:
                out[f.path] = FileOutcome(
                    Verdict("unchecked", detail="bundle budget"),
                    error=f"not checked: inflating it would pass the {max_total} bytes "
                          "allowed for the whole bundle")
                continue
            hashes = hashing.Hashes(ALGORITHMS)
            try:
                with zf.open(info) as member:
                    # One byte past the limit at most: enough to know it lies.
                    for chunk in hashing.chunks(member.read, limit + 1):
                        hashes.update(chunk)
                        spent += len(chunk)
                        if hashes.size > limit:
                            raise _Lie(f"inflates to more than the {limit} bytes declared; "
                                       "stopped there")
                        if stop is not None and stop():
                            raise _Lie("not checked: the run is stopping")
            except _Lie as e:
                verdict = Verdict("mismatch", "size", str(limit), f"more than {limit}",
                                  str(e)) if hashes.size > limit else Verdict("unchecked",
                                                                              detail=str(e))
                out[f.path] = FileOutcome(verdict, size=hashes.size, error=str(e))
                continue
            except (OSError, zipfile.BadZipFile, EOFError, ValueError, zlib.error) as e:
                out[f.path] = FileOutcome(Verdict("unchecked", detail=str(e)), error=str(e))
                continue
            except NotImplementedError as e:  # Deflate64, implode...: methods zipfile lacks
                msg = f"member compressed in a way Kiel cannot read ({e})"
                out[f.path] = FileOutcome(Verdict("unchecked", detail=msg), error=msg)
                continue
            except RuntimeError as e:  # an encrypted member: zipfile asks for a password
                msg = f"member not readable: {e}"
                out[f.path] = FileOutcome(Verdict("unchecked", detail=msg), error=msg)
                continue
            found = hashes.hexdigests()
            out[f.path] = FileOutcome(check(f, hashes.size, found), hashes.size, found)
    return out
