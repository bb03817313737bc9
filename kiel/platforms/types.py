"""The values that pass between the platform helpers and the renewal engine.

Every one is a frozen dataclass: a platform helper never fetches, never
writes, never keeps state between calls; what it knows comes in as
:class:`Answer` values and goes out as a :class:`Step`, a
:class:`Manifest` or a :class:`Failure` (docs/datasets.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kiel.hashing import ALGORITHMS as ALGORITHMS  # strongest first

# The failures a deposit can end in, as Sandcrawler names them (issue 14).
FAILURES = ("too-many-files", "too-large-size", "platform-404", "platform-restricted",
            "platform-scope", "platform-error")
STRATEGIES = ("fileset", "single", "bundle")

JSON = "application/json"


@dataclass(frozen=True)
class DepositRef:
    """A deposit a URL names: which platform, where, which deposit.

    ``base`` is the scheme and host the platform's API is asked at (a
    Dataverse installation is any host); ``version`` is the version the URL
    names, or None for the latest. ``kind`` is ``deposit``, or ``file``
    when the URL names one file of a deposit (a scope failure).
    """

    platform: str
    domain: str
    deposit_id: str
    version: str | None = None
    base: str = ""
    kind: str = "deposit"


@dataclass(frozen=True)
class Request:
    """One API URL the engine must fetch, with the Accept header to send."""

    url: str
    accept: str = JSON


@dataclass(frozen=True)
class Step:
    """The API URLs to fetch before :func:`kiel.platforms.advance` is called again."""

    requests: tuple[Request, ...]


@dataclass(frozen=True)
class Answer:
    """What the engine got for one request: the status as Kiel writes it
    (three digits, ``000`` for no complete answer), the body, and the
    ``Location`` of a redirect (the helper asks for the target next)."""

    status: str
    body: bytes
    location: str | None = None


@dataclass(frozen=True)
class ManifestFile:
    """One file as the platform declares it.

    ``access`` is ``open``, or ``restricted`` / ``embargoed`` for a file
    the platform lists but does not serve to the public: it is recorded,
    not fetched.
    """

    path: str
    size: int | None
    url: str
    md5: str | None = None
    sha1: str | None = None
    sha256: str | None = None
    media_type: str | None = None
    access: str = "open"

    def declared(self) -> dict[str, str]:
        """The checksums the platform declares, by algorithm."""
        out = {}
        for alg in ALGORITHMS:
            value = getattr(self, alg)
            if value:
                out[alg] = value
        return out


@dataclass(frozen=True)
class Manifest:
    """A deposit resolved into its files, with the strategy to fetch them.

    ``files`` lists every file the platform declares (for a bundle, the
    bundle's interior); ``fetch`` is what the engine fetches as objects:
    the open files, or the one ``bundle_url``. ``api_urls`` are the API
    answers (objects of the record) this manifest was read from.
    """

    platform: str
    domain: str
    deposit_id: str
    version: str | None
    strategy: str
    files: tuple[ManifestFile, ...]
    bundle_url: str | None
    api_urls: tuple[str, ...]

    @property
    def open_files(self) -> tuple[ManifestFile, ...]:
        return tuple(f for f in self.files if f.access == "open")

    @property
    def fetch(self) -> tuple[str, ...]:
        """The URLs the engine fetches as objects of the record."""
        if self.strategy == "bundle" and self.bundle_url:
            return (self.bundle_url,)
        return tuple(f.url for f in self.open_files)

    @property
    def file_count(self) -> int:
        return len(self.files)

    @property
    def total_size(self) -> int:
        return sum(f.size or 0 for f in self.files)


@dataclass(frozen=True)
class Failure:
    """A deposit the platform said no to, as data: ``name`` is one of
    :data:`FAILURES`, ``message`` says why in words."""

    name: str
    message: str
    platform: str = ""
    domain: str = ""
    deposit_id: str = ""
    api_urls: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.name not in FAILURES:
            raise ValueError(f"unknown failure {self.name!r}")


# What the API answers of one deposit may cost together: their bytes, and
# 64 bytes more for each ``{`` or ``[`` (what a parsed container costs at
# least), so a listing is bounded as a whole, not only answer by answer.
MAX_API_BYTES = 64 * 1024**2
# The files one manifest note may list: a deposit listing more ends in
# too-many-files (its note would be megabytes, and read by every reader).
MAX_LISTED_FILES = 10_000


@dataclass(frozen=True)
class Limits:
    """Settings ``max_file_count`` and ``max_total_size`` (kiel.conf), and
    the budget of a deposit's API answers together (``max_api_bytes``)."""

    max_file_count: int = 200
    max_total_size: int = 64 * 1024**3
    max_api_bytes: int = MAX_API_BYTES
    max_listed_files: int = MAX_LISTED_FILES


@dataclass(frozen=True)
class Verdict:
    """One file checked against what the platform declared: ``ok`` (a
    declared checksum matched), ``mismatch`` (size or a checksum differs),
    ``unchecked`` (nothing to compare)."""

    status: str
    algorithm: str | None = None
    expected: str | None = None
    found: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class FileOutcome:
    """What the engine did with one file of a manifest, for the note.

    ``file`` is the attempt file that holds the body, relative to the
    record directory (``<escaped url>/<tist>_200_<type>``), or None when
    nothing was stored; ``found`` holds the checksums computed by Kiel.
    """

    verdict: Verdict | None
    size: int | None = None
    found: dict[str, str] = field(default_factory=dict)
    file: str | None = None
    error: str | None = None
