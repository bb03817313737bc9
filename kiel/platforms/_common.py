"""What every platform helper shares: replaying answers, reading JSON,
DOIs, and turning a list of files into a manifest under the limits.

A helper is a function of the answers so far. :class:`Ctx` hands it the
parsed body of a URL already fetched, or stops it with :class:`Need` when
the URL is still to be fetched; the next call replays the same path with
one more answer. So a helper holds no state and the engine may keep the
answers wherever it likes (docs/datasets.md).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from kiel.platforms.manifests import ManifestRecord, writable
from kiel.platforms.types import (
    JSON,
    Answer,
    DepositRef,
    Failure,
    Limits,
    Manifest,
    ManifestFile,
    Request,
)

# No deposit needs more API answers than this (pages of a file listing,
# folders, redirects); past it the helper stops with platform-error
# rather than walk a platform that pages forever.
MAX_API_REQUESTS = 200
MAX_HOPS = 5


class Need(Exception):
    """The helper needs this URL fetched before it can go on."""

    def __init__(self, request: Request):
        super().__init__(request.url)
        self.request = request


class Stop(Exception):
    """The helper ends in a named failure."""

    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name = name
        self.message = message


class Ctx:
    def __init__(self, ref: DepositRef, answers: Mapping[str, Answer],
                 today: str | None = None, previous: ManifestRecord | None = None,
                 parsed: dict[str, Any] | None = None):
        self.ref = ref
        self.answers = answers
        # Bodies parsed at an earlier step, by final URL: an answer is parsed
        # once, and its caller may drop the bytes (kiel.renewal.deposits).
        self.parsed = parsed if parsed is not None else {}
        self.today = today  # YYYY-MM-DD, to tell a past embargo from a running one
        # The deposit's last manifest note: a helper that sees the same version
        # again takes its files from it instead of listing them (one request).
        self.previous = previous if previous is not None and previous.failure is None \
            and previous.key == (ref.platform, ref.domain, ref.deposit_id) else None
        self.used: list[str] = []  # API URLs read, in order: the manifest names them

    def peek(self, url: str) -> Answer:
        """The answer for ``url`` itself, a redirect not followed."""
        if len(self.used) >= MAX_API_REQUESTS:
            raise Stop("platform-error", f"more than {MAX_API_REQUESTS} API requests "
                       "for one deposit")
        got = self.answers.get(url)
        if got is None:
            raise Need(Request(url, JSON))
        self.used.append(url)
        return got

    def files_of_previous(self, version: str | None) -> list[ManifestFile] | None:
        """The files of the last manifest when it noted ``version`` and every
        file with its URL; None when they must be listed again."""
        prev = self.previous
        if prev is None or version is None or prev.version != version or not prev.files:
            return None
        out = []
        for f in prev.files:
            if f.url is None or ":***@" in f.url:  # a redacted URL is not the one to ask
                return None
            access = f.status if f.status in ("restricted", "embargoed") else "open"
            out.append(ManifestFile(path=f.path, size=f.size, url=f.url,
                                    md5=f.declared.get("md5"), sha1=f.declared.get("sha1"),
                                    sha256=f.declared.get("sha256"), access=access))
        return out

    def answer(self, url: str, accept: str = JSON) -> tuple[str, Answer]:
        """The final answer for ``url`` (redirects followed), and its URL."""
        for _ in range(MAX_HOPS + 1):
            if len(self.used) >= MAX_API_REQUESTS:
                raise Stop("platform-error", f"more than {MAX_API_REQUESTS} API requests "
                           "for one deposit")
            got = self.answers.get(url)
            if got is None:
                raise Need(Request(url, accept))
            self.used.append(url)
            if got.status[:1] == "3" and got.location:
                url = urljoin(url, got.location)
                continue
            return url, got
        raise Stop("platform-error", f"more than {MAX_HOPS} redirects from the API")

    def json(self, url: str, what: str = "deposit") -> Any:
        """The JSON body of ``url``; an error status becomes a named failure."""
        final, got = self.answer(url)
        status = got.status
        if status in ("404", "410"):
            raise Stop("platform-404", f"the platform has no such {what} ({status} at {final})")
        if status in ("401", "403"):
            raise Stop("platform-restricted", f"the {what} is not public ({status} at {final})")
        if status != "200":
            detail = "no complete answer" if status == "000" else f"status {status}"
            raise Stop("platform-error", f"{detail} from {final}")
        if final in self.parsed:
            return self.parsed[final]
        try:
            value = json.loads(got.body)
        except (ValueError, RecursionError):
            raise Stop("platform-error", f"not JSON at {final}") from None
        self.parsed[final] = value
        return value


def obj(value: Any, where: str) -> dict[str, Any]:
    """``value`` as a JSON object, or a platform-error naming ``where``."""
    if not isinstance(value, dict):
        raise Stop("platform-error", f"unexpected answer: {where} is not an object")
    return value


def sub(parent: dict[str, Any], key: str) -> dict[str, Any]:
    """``parent[key]`` when it is an object, else an empty one: optional
    parts of an answer are read without a check at every step."""
    value = parent.get(key)
    return value if isinstance(value, dict) else {}


def lst(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Stop("platform-error", f"unexpected answer: {where} is not a list")
    return value


def as_int(value: Any) -> int | None:
    """A size as platforms write it: a number, or digits in a string; a
    negative number is no size (it would offset a lie elsewhere in a sum)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def hexsum(value: Any) -> str | None:
    """A checksum in lower-case hex, or None when it is not hex at all."""
    if not isinstance(value, str):
        return None
    v = value.strip().lower()
    return v if v and re.fullmatch(r"[0-9a-f]+", v) else None


def base_of(url: str) -> str:
    """Scheme and authority of ``url``: the host lower-cased, a user and
    password kept as given (the platform is sent what the record names)."""
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    return f"{parts.scheme.lower()}://{userinfo}{at}{hostport.lower()}"


def host_of(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


_DOI_HOSTS = {"doi.org", "dx.doi.org", "www.doi.org"}


def doi_of(url: str) -> str | None:
    """The DOI a URL or a ``doi:`` value names, in its own case, or None."""
    text = url.strip()
    low = text.lower()
    for head in ("doi:", "info:doi/"):
        if low.startswith(head):
            return unquote(text[len(head):]).strip() or None
    parts = urlsplit(text)
    if parts.scheme.lower() in ("http", "https") and (parts.hostname or "").lower() in _DOI_HOSTS:
        doi = unquote(parts.path.lstrip("/"))
        return doi if doi.startswith("10.") else None
    if low.startswith("10.") and "/" in text:
        return text
    return None


def finish(ref: DepositRef, ctx: Ctx, version: str | None, files: list[ManifestFile],
           bundle_url: str | None, limits: Limits) -> Manifest | Failure:
    """The manifest of a listing: its strategy chosen, its limits applied."""
    api = tuple(dict.fromkeys(ctx.used))
    # A name the platform sent with a lone surrogate is kept as its escape:
    # every line that names it must be writable as UTF-8.
    files = [dataclasses.replace(f, path=writable(f.path), url=writable(f.url),
                                 media_type=writable(f.media_type)) for f in files]

    def fail(name: str, message: str) -> Failure:
        return Failure(name, message, ref.platform, ref.domain, ref.deposit_id, api)

    if len(files) > limits.max_listed_files:
        return fail("too-many-files", f"the deposit lists {len(files)} files, over the "
                    f"{limits.max_listed_files} a manifest note keeps")
    # One path, one file: an entry listed twice alike is one file; two
    # different files under one path cannot both be judged, nor noted apart.
    by_path: dict[str, ManifestFile] = {}
    for f in files:
        seen = by_path.setdefault(f.path, f)
        if seen != f:
            return fail("platform-error", f"the listing names {f.path} for two different "
                        f"files ({seen.url} and {f.url})")
    files = list(by_path.values())
    open_files = [f for f in files if f.access == "open"]

    if not open_files:
        if files:
            kinds = sorted({f.access for f in files})
            return fail("platform-restricted", f"all {len(files)} files are "
                        f"{' or '.join(kinds)}")
        return fail("platform-error", "the deposit lists no files")
    total = sum(f.size or 0 for f in open_files)
    if total > limits.max_total_size:
        return fail("too-large-size", f"{total} bytes in {len(open_files)} files, over "
                    f"max_total_size ({limits.max_total_size})")
    if len(open_files) == 1:
        strategy = "single"
    elif len(open_files) <= limits.max_file_count:
        strategy = "fileset"
    elif bundle_url:
        # Sandcrawler's rule: a bundle only when the fileset is too many files.
        strategy = "bundle"
    else:
        return fail("too-many-files", f"{len(open_files)} files, over max_file_count "
                    f"({limits.max_file_count}), and the platform offers no bundle")
    return Manifest(ref.platform, ref.domain, ref.deposit_id, version, strategy,
                    tuple(files), bundle_url, api)
