"""The OAI-PMH 2.0 data provider as a WSGI application.

Lists (``ListIdentifiers``, ``ListRecords``, ``ListSets``) are answered from
the index (:mod:`kiel.oai.index`) with keyset paging, so every page costs a
few binary searches whatever its depth. ``GetRecord`` and
``ListMetadataFormats`` with an identifier read the record directory itself.
Responses are assembled as text so that the ``amf`` format carries the
stored bytes of the record unchanged.
"""

from __future__ import annotations

import bisect
import calendar
import os
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Iterable
from urllib.parse import parse_qsl, quote, unquote
from xml.sax.saxutils import escape as _xml_escape

from kiel import store as _store
from kiel.config import Config
from kiel.home import Home
from kiel.oai import formats
from kiel.oai.index import IndexCache, IndexMissing, Row, present_datestamp, read_gone, read_id
from kiel.oai.token import BadToken, ListPosition, SetsPosition, Tokens, load_key
from kiel.redist import record_path, record_sets
from kiel.tist import iso

OAI_NS = "http://www.openarchives.org/OAI/2.0/"
GRANULARITY = "YYYY-MM-DDThh:mm:ssZ"
RETRY_AFTER = 10  # seconds a client is asked to wait when the provider is full
MAX_BODY = 64 * 1024  # a POST larger than any legal OAI request is refused

# verb -> (required, optional, takes a resumptionToken)
VERBS: dict[str, tuple[frozenset, frozenset, bool]] = {
    "Identify": (frozenset(), frozenset(), False),
    "ListMetadataFormats": (frozenset(), frozenset({"identifier"}), False),
    "ListSets": (frozenset(), frozenset(), True),
    "GetRecord": (frozenset({"identifier", "metadataPrefix"}), frozenset(), False),
    "ListIdentifiers": (frozenset({"metadataPrefix"}), frozenset({"from", "until", "set"}), True),
    "ListRecords": (frozenset({"metadataPrefix"}), frozenset({"from", "until", "set"}), True),
}

# Characters an OAI local identifier may hold (OAI identifier guidelines);
# anything else in a record id is percent-encoded, and so is "%" itself.
_ID_SAFE = "-_.!~*'();/?:@&=+$,"
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SECOND = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


class OAIError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class Errors(Exception):
    def __init__(self, errors: list[OAIError]):
        super().__init__(", ".join(e.code for e in errors))
        self.errors = errors


def x(text: str) -> str:
    """Escape for XML text and double-quoted attributes."""
    return _xml_escape(text, {'"': "&quot;"})


def parse_datestamp(text: str, end: bool) -> tuple[int, str]:
    """``from``/``until`` as a tist, with its granularity ("day"/"second").

    A day ``until`` means the end of that day.
    """
    if _SECOND.match(text):
        fmt, gran = "%Y-%m-%dT%H:%M:%SZ", "second"
    elif _DAY.match(text):
        fmt, gran = "%Y-%m-%d", "day"
    else:
        raise OAIError("badArgument", f"{text!r} is not a UTC datestamp "
                       "(YYYY-MM-DD or YYYY-MM-DDThh:mm:ssZ)")
    try:
        tist = calendar.timegm(datetime.strptime(text, fmt).timetuple())
    except ValueError:
        raise OAIError("badArgument", f"{text!r} is not a valid date") from None
    if gran == "day" and end:
        tist += 86399
    return tist, gran


def set_name(spec: str) -> str:
    parts = spec.split(":")
    if spec == "RePEc":
        return "RePEc: Research Papers in Economics"
    if spec == "other":
        return "Records whose id is not a RePEc handle"
    if len(parts) == 2:
        return f"RePEc archive {parts[1]}"
    return f"RePEc series {parts[1]}:{parts[2]}"


@dataclass(frozen=True)
class StoredRecord:
    id: str
    datestamp: int
    deleted: bool
    sets: tuple[str, ...]
    record_dir: str


class App:
    """``create_app(home_root)`` returns one; it is a WSGI callable."""

    def __init__(self, home_root: str, config: Config | None = None):
        self.home = Home(os.path.abspath(home_root))
        self.config = config if config is not None else self.home.config()
        self.indexes = IndexCache(self.home.root)
        self.tokens = Tokens(load_key(self.home.root))
        # Requests over the limit are refused at once rather than queued: a
        # harvester told 503 + Retry-After comes back, one left hanging may not.
        self.slots = threading.BoundedSemaphore(self.config.max_requests)
        self.prefix = f"oai:{self.config.repository_identifier}:"

    # --- WSGI --------------------------------------------------------------

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "POST"):
            return _plain(start_response, "405 Method Not Allowed",
                          "OAI-PMH takes GET and POST only.\n", [("Allow", "GET, POST")])
        if not self.slots.acquire(blocking=False):
            return _plain(start_response, "503 Service Unavailable",
                          "Too many requests at once; retry later.\n",
                          [("Retry-After", str(RETRY_AFTER))])
        try:
            try:
                body = self.respond(environ)
            except IndexMissing as e:
                return _plain(start_response, "503 Service Unavailable", f"{e}\n",
                              [("Retry-After", str(RETRY_AFTER * 6))])
            except _TooLarge:
                return _plain(start_response, "413 Payload Too Large", "Request too large.\n")
        finally:
            self.slots.release()
        start_response("200 OK", [("Content-Type", "text/xml; charset=utf-8"),
                                  ("Content-Length", str(len(body)))])
        return [body]

    def _arguments(self, environ: dict) -> list[tuple[str, str]] | None:
        if environ.get("REQUEST_METHOD") == "POST":
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            if length > MAX_BODY:
                raise _TooLarge()
            raw = environ["wsgi.input"].read(length) if length > 0 else b""
            text = raw.decode("latin-1")
        else:
            text = environ.get("QUERY_STRING", "")
        try:
            return parse_qsl(text, keep_blank_values=True, strict_parsing=False,
                             encoding="utf-8", errors="strict", max_num_fields=32)
        except (ValueError, UnicodeDecodeError):
            return None

    def respond(self, environ: dict) -> bytes:
        """The OAI-PMH document answering one request."""
        now = int(time.time())
        pairs = self._arguments(environ)
        if pairs is None:
            return self._document(now, None, [OAIError("badArgument",
                                                       "the arguments cannot be decoded")])
        verbs = [v for k, v in pairs if k == "verb"]
        if len(verbs) != 1 or verbs[0] not in VERBS:
            if not verbs:
                msg = "the verb argument is missing"
            elif len(verbs) > 1:
                msg = "the verb argument is repeated"
            else:
                msg = f"{verbs[0]!r} is not an OAI-PMH verb"
            return self._document(now, None, [OAIError("badVerb", msg)])
        verb = verbs[0]
        args: dict[str, str] = {}
        problems = []
        for k, v in pairs:
            if k == "verb":
                continue
            if k in args:
                problems.append(OAIError("badArgument", f"the argument {k} is repeated"))
            args[k] = v
        required, optional, resumable = VERBS[verb]
        allowed = required | optional | ({"resumptionToken"} if resumable else set())
        for k in args:
            if k not in allowed:
                problems.append(OAIError("badArgument", f"{verb} takes no argument {k}"))
        if "resumptionToken" in args and resumable:
            if len(args) > 1:
                problems.append(OAIError("badArgument",
                                         "resumptionToken is an exclusive argument"))
        else:
            for k in sorted(required - set(args)):
                problems.append(OAIError("badArgument", f"{verb} needs the argument {k}"))
        for k, v in args.items():
            if v == "" and k in allowed:
                problems.append(OAIError("badArgument", f"the argument {k} is empty"))
        if problems:
            return self._document(now, None, problems)
        request = {"verb": verb, **args}
        try:
            body = getattr(self, "_" + verb)(args)
        except (OAIError, Errors) as e:
            errors = e.errors if isinstance(e, Errors) else [e]
            # The protocol: after badVerb or badArgument the request element
            # carries the base URL only, no attributes.
            if any(err.code in ("badVerb", "badArgument") for err in errors):
                request = None
            return self._document(now, request, errors)
        return self._document(now, request, body)

    def _document(self, now: int, request: dict | None, body) -> bytes:
        attrs = ""
        if request is not None:
            attrs = "".join(f' {k}="{x(v)}"' for k, v in request.items())
        head = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<OAI-PMH xmlns="{OAI_NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            f'xsi:schemaLocation="{OAI_NS} http://www.openarchives.org/OAI/2.0/OAI-PMH.xsd">\n'
            f"<responseDate>{iso(now)}</responseDate>\n"
            f"<request{attrs}>{x(self.config.base_url)}</request>\n"
        ).encode("utf-8")
        if isinstance(body, list):
            body = "".join(f'<error code="{e.code}">{x(e.message)}</error>\n'
                           for e in body).encode("utf-8")
        return head + body + b"</OAI-PMH>\n"

    # --- helpers -----------------------------------------------------------

    def oai_identifier(self, record_id: str) -> str:
        return self.prefix + quote(record_id, safe=_ID_SAFE)

    def record_id(self, identifier: str) -> str:
        if not identifier.startswith(self.prefix) or len(identifier) == len(self.prefix):
            raise OAIError("idDoesNotExist", f"{identifier!r} is not an identifier of "
                           f"this repository (they start with {self.prefix})")
        return unquote(identifier[len(self.prefix):], errors="strict")

    def lookup(self, identifier: str) -> StoredRecord:
        """The record an identifier names, read from its directory."""
        try:
            rid = self.record_id(identifier)
        except UnicodeDecodeError:
            raise OAIError("idDoesNotExist", f"{identifier!r} is not a valid identifier") from None
        record_dir = os.path.join(self.home.store, record_path(rid))
        newest = _store.newest_version(record_dir)
        # The redist folds case in RePEc handles; the identifier must name the
        # record's own id exactly, as lists give it.
        if newest is None or read_id(os.path.join(record_dir, newest[1])) != rid:
            raise OAIError("idDoesNotExist", f"no record {identifier}")
        gone = read_gone(record_dir)
        if gone is not None:
            return StoredRecord(rid, gone, True, tuple(record_sets(rid)), record_dir)
        return StoredRecord(rid, present_datestamp(record_dir, newest[0]), False,
                            tuple(record_sets(rid)), record_dir)

    def _header(self, rid: str, datestamp: int, deleted: bool, sets: Iterable[str]) -> str:
        status = ' status="deleted"' if deleted else ""
        specs = "".join(f"<setSpec>{s}</setSpec>" for s in sets)
        return (f"<header{status}><identifier>{x(self.oai_identifier(rid))}</identifier>"
                f"<datestamp>{iso(datestamp)}</datestamp>{specs}</header>")

    def _record(self, prefix: str, rid: str, datestamp: int, deleted: bool,
                sets: Iterable[str], record_dir: str | None = None) -> bytes:
        out = ["<record>", self._header(rid, datestamp, deleted, sets)]
        meta = None
        if not deleted:
            record_dir = record_dir or os.path.join(self.home.store, record_path(rid))
            # None when the version has vanished since the index was built:
            # the header alone is still a true statement (metadata is optional).
            meta = formats.metadata(prefix, record_dir, datestamp)
        if meta is None:
            return ("".join(out) + "</record>\n").encode("utf-8")
        return ("".join(out) + "<metadata>").encode("utf-8") + meta + b"</metadata></record>\n"

    @staticmethod
    def _format(prefix: str) -> None:
        if prefix not in formats.FORMATS:
            raise OAIError("cannotDisseminateFormat",
                           f"no metadata format {prefix!r} here (try {', '.join(formats.FORMATS)})")

    # --- the six verbs ------------------------------------------------------

    def _Identify(self, args: dict) -> bytes:
        index = self.indexes.get()
        earliest = index.earliest if index.earliest is not None else 0
        c = self.config
        return (
            "<Identify>"
            f"<repositoryName>{x(c.repository_name)}</repositoryName>"
            f"<baseURL>{x(c.base_url)}</baseURL>"
            "<protocolVersion>2.0</protocolVersion>"
            f"<adminEmail>{x(c.admin_email)}</adminEmail>"
            f"<earliestDatestamp>{iso(earliest)}</earliestDatestamp>"
            "<deletedRecord>persistent</deletedRecord>"
            f"<granularity>{GRANULARITY}</granularity>"
            "</Identify>\n"
        ).encode("utf-8")

    def _ListMetadataFormats(self, args: dict) -> bytes:
        self.indexes.get()
        if "identifier" in args:
            rec = self.lookup(args["identifier"])
            if rec.deleted:
                raise OAIError("noMetadataFormats",
                               f"{args['identifier']} is deleted: it has no metadata")
        out = ["<ListMetadataFormats>"]
        for f in formats.FORMATS.values():
            out.append(f"<metadataFormat><metadataPrefix>{f.prefix}</metadataPrefix>"
                       f"<schema>{x(f.schema)}</schema>"
                       f"<metadataNamespace>{x(f.namespace)}</metadataNamespace></metadataFormat>")
        out.append("</ListMetadataFormats>\n")
        return "".join(out).encode("utf-8")

    def _ListSets(self, args: dict) -> bytes:
        index = self.indexes.get()
        specs = index.set_specs
        start = 0
        if "resumptionToken" in args:
            try:
                start = bisect.bisect_right(specs, self.tokens.read_sets(
                    args["resumptionToken"]).after)
            except BadToken as e:
                raise OAIError("badResumptionToken", str(e)) from None
        if not specs:
            raise OAIError("noSetHierarchy", "the repository is empty, so it has no sets")
        if start >= len(specs):
            # Only when sets vanished in a rebuild since the token was made.
            raise OAIError("badResumptionToken", "the list of sets has changed; start again")
        stop = min(start + self.config.page_size, len(specs))
        out = ["<ListSets>"]
        for spec in specs[start:stop]:
            out.append(f"<set><setSpec>{spec}</setSpec><setName>{x(set_name(spec))}</setName></set>")
        if "resumptionToken" in args or stop < len(specs):
            token = self.tokens.sets_token(SetsPosition(specs[stop - 1])) if stop < len(specs) else ""
            out.append(f'<resumptionToken completeListSize="{len(specs)}" cursor="{start}">'
                       f"{token}</resumptionToken>")
        out.append("</ListSets>\n")
        return "".join(out).encode("utf-8")

    def _GetRecord(self, args: dict) -> bytes:
        self.indexes.get()
        errors = []
        try:
            self._format(args["metadataPrefix"])
        except OAIError as e:
            errors.append(e)
        try:
            rec = self.lookup(args["identifier"])
        except OAIError as e:
            errors.append(e)
        if errors:
            raise Errors(errors)
        return (b"<GetRecord>" + self._record(args["metadataPrefix"], rec.id, rec.datestamp,
                                              rec.deleted, rec.sets, rec.record_dir)
                + b"</GetRecord>\n")

    def _ListIdentifiers(self, args: dict) -> bytes:
        return self._list("ListIdentifiers", args)

    def _ListRecords(self, args: dict) -> bytes:
        return self._list("ListRecords", args)

    def _list(self, verb: str, args: dict) -> bytes:
        index = self.indexes.get()
        after = None
        if "resumptionToken" in args:
            try:
                pos = self.tokens.read_list(args["resumptionToken"], verb)
            except BadToken as e:
                raise OAIError("badResumptionToken", str(e)) from None
            prefix, set_spec, from_, until, after = pos.prefix, pos.set, pos.from_, pos.until, pos.after
            if prefix not in formats.FORMATS:
                raise OAIError("badResumptionToken", f"format {prefix!r} is no longer offered")
        else:
            prefix, set_spec = args["metadataPrefix"], args.get("set")
            from_ = until = None
            grans = []
            if "from" in args:
                from_, g = parse_datestamp(args["from"], end=False)
                grans.append(g)
            if "until" in args:
                until, g = parse_datestamp(args["until"], end=True)
                grans.append(g)
            if len(grans) == 2 and grans[0] != grans[1]:
                raise OAIError("badArgument", "from and until have different granularities")
            if from_ is not None and until is not None and from_ > until:
                raise OAIError("badArgument", "from is later than until")
            self._format(prefix)
        if set_spec is not None and not index.set_specs:
            raise OAIError("noSetHierarchy", "the repository is empty, so it has no sets")
        view = index.view(set_spec)
        lo = view.first_from(from_) if from_ is not None else 0
        hi = view.first_from(until + 1) if until is not None else len(view)
        start = max(lo, view.first_after(after)) if after is not None else lo
        if start >= hi:
            raise OAIError("noRecordsMatch", "no records match these arguments")
        stop = min(start + self.config.page_size, hi)
        rows: list[Row] = view.rows(start, stop)
        out = [f"<{verb}>".encode("utf-8")]
        for r in rows:
            if verb == "ListIdentifiers":
                out.append(self._header(r.id, r.datestamp, r.deleted, r.sets).encode("utf-8")
                           + b"\n")
            else:
                out.append(self._record(prefix, r.id, r.datestamp, r.deleted, r.sets))
        if after is not None or stop < hi:
            token = ""
            if stop < hi:
                token = self.tokens.list_token(ListPosition(
                    verb, prefix, set_spec, from_, until, rows[-1].key))
            out.append(f'<resumptionToken completeListSize="{hi - lo}" cursor="{start - lo}">'
                       f"{token}</resumptionToken>".encode("utf-8"))
        out.append(f"</{verb}>\n".encode("utf-8"))
        return b"".join(out)


class _TooLarge(Exception):
    pass


def _plain(start_response: Callable, status: str, text: str,
           extra: list[tuple[str, str]] | None = None) -> list[bytes]:
    body = text.encode("utf-8")
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(body)))] + (extra or []))
    return [body]


def create_app(home_root: str, config: Config | None = None) -> App:
    """The WSGI application serving the home at ``home_root``."""
    return App(home_root, config)
