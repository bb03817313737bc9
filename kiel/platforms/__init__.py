"""Deposits on data platforms: every file of a linked deposit, verified.

A URL a record links to may name a deposit on Zenodo, a Dataverse
installation, Figshare, Dryad, OSF or archive.org. :func:`match` (or
:func:`match_page`, for a landing page whose markup names the deposit)
turns it into a :class:`DepositRef`; :func:`start` and :func:`advance`
then say which API URLs to fetch, until the answers resolve into a
:class:`Manifest` (the files, their declared checksums, the strategy) or a
named :class:`Failure`. Nothing here fetches: the engine fetches every
URL under its own politeness and network guard, and stores each API
answer as an object of the record (docs/datasets.md).

The engine's loop::

    ref = match(url) or match_page(url, body)
    step, answers = start(ref), {}
    while isinstance(step, Step):
        for req in step.requests:
            answers[req.url] = Answer(status, body, location)  # fetched as an object
        step = advance(ref, answers, limits, today)
    # step is a Manifest (fetch manifest.fetch, check each file) or a Failure
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from types import ModuleType
from typing import Any

from kiel.platforms import archiveorg, dataverse, dryad, figshare, osf, zenodo
from kiel.platforms._common import Ctx, Need, Stop
from kiel.platforms.fixity import check, check_bundle, digest_file, needed
from kiel.platforms.manifests import (
    ManifestRecord,
    NotedFile,
    again,
    carried,
    failure_note,
    fingerprint,
    manifest_note,
    previous,
    read_manifests,
    unchanged,
)
from kiel.platforms.page import links_in_page
from kiel.platforms.types import (
    FAILURES,
    STRATEGIES,
    Answer,
    DepositRef,
    Failure,
    FileOutcome,
    Limits,
    Manifest,
    ManifestFile,
    Request,
    Step,
    Verdict,
)

__all__ = [
    "FAILURES", "PLATFORMS", "STRATEGIES", "Answer", "DepositRef", "Failure", "FileOutcome",
    "Limits", "Manifest", "ManifestFile", "ManifestRecord", "NotedFile", "Request", "Step",
    "Verdict", "advance", "again", "carried", "check", "check_bundle", "digest_file",
    "failure_note", "fingerprint", "limits_from", "manifest_note", "match", "match_links",
    "match_page", "needed", "previous", "read_manifests", "start", "unchanged",
]

# Order matters only where two could claim a URL; none do today.
PLATFORMS: dict[str, ModuleType] = {
    m.NAME: m for m in (zenodo, dataverse, figshare, dryad, osf, archiveorg)
}


# Every platform's URLs (and the DOIs that lead to them) hold one of these:
# a cheap test first, as match runs on every URL of every record.
_HINTS = ("doi", "zenodo", "figshare", "dryad", "osf.io", "archive.org", "persistentid")


def match(url: str) -> DepositRef | None:
    """The deposit a URL names, or None when no platform knows it."""
    if not isinstance(url, str) or len(url) > 8192:
        return None
    low = url.lower()
    if not low.lstrip().startswith("10.") and not any(h in low for h in _HINTS):
        return None
    for module in PLATFORMS.values():
        try:
            ref: DepositRef | None = module.match(url.strip())
        except ValueError:  # urlsplit on a malformed netloc (an unclosed IPv6 bracket)
            ref = None
        if ref is not None:
            return ref
    return None


def match_page(url: str, body: bytes) -> DepositRef | None:
    """The deposit a landing page names in its markup: a canonical link, an
    ``og:url``, a meta refresh, a ``citation_doi`` or ``DC.identifier``
    (a DOI page that redirects by markup, a Dataverse page behind a
    journal's own host). The page's own URL is tried first."""
    return match_links(url, links_in_page(url, body))


def match_links(url: str, links: Iterable[str]) -> DepositRef | None:
    """:func:`match_page` on links already read from the page (discovery's
    parse gives them: ``kiel.discovery.PageReading.identity``)."""
    ref = match(url)
    if ref is not None:
        return ref
    for link in links:
        ref = match(link)
        if ref is not None:
            return ref
    return None


def start(ref: DepositRef, limits: Limits | None = None, today: str | None = None,
          previous: ManifestRecord | None = None) -> Step | Manifest | Failure:
    """The first API request for ``ref``; a Failure when the URL is out of
    scope (one file of a deposit) before anything is asked."""
    return advance(ref, {}, limits, today, previous)


def advance(ref: DepositRef, answers: Mapping[str, Answer], limits: Limits | None = None,
            today: str | None = None, previous: ManifestRecord | None = None,
            parsed: dict[str, Any] | None = None) -> Step | Manifest | Failure:
    """The next step, given every answer fetched so far for this deposit
    (keyed by the URL of its :class:`Request`). ``today`` (``YYYY-MM-DD``)
    tells a past embargo from a running one. ``previous`` is the deposit's
    last manifest note (:func:`previous`): with it an unchanged deposit costs
    one API request (docs/datasets.md, Requests per renewal). ``parsed``
    keeps each body parsed once across calls, by URL: a caller that passes
    it may drop the bytes of an answer once its URL is there."""
    module = PLATFORMS.get(ref.platform)
    if module is None:
        return Failure("platform-scope", f"no platform helper named {ref.platform!r}",
                       ref.platform, ref.domain, ref.deposit_id)
    ctx = Ctx(ref, answers, today, previous, parsed)
    resolve: Callable[[Ctx, Limits], Manifest | Failure] = module.resolve
    try:
        return resolve(ctx, limits or Limits())
    except Need as need:
        return Step((need.request,))
    except Stop as stop:
        return Failure(stop.name, stop.message, ref.platform, ref.domain, ref.deposit_id,
                       tuple(dict.fromkeys(ctx.used)))
    except (TypeError, AttributeError, KeyError, ValueError, IndexError,
            RecursionError) as e:
        # An answer of a shape no documentation shows: a failure as data,
        # never a crash of the renewal (issue 14).
        return Failure("platform-error", f"unexpected answer ({type(e).__name__}: {e})",
                       ref.platform, ref.domain, ref.deposit_id,
                       tuple(dict.fromkeys(ctx.used)))


def limits_from(config: object) -> Limits:
    """The limits a :class:`kiel.config.Config` sets."""
    return Limits(max_file_count=getattr(config, "max_file_count", Limits.max_file_count),
                  max_total_size=getattr(config, "max_total_size", Limits.max_total_size),
                  max_api_bytes=getattr(config, "max_api_bytes", Limits.max_api_bytes),
                  max_listed_files=getattr(config, "max_listed_files",
                                           Limits.max_listed_files))
