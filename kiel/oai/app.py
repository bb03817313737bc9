"""The OAI-PMH 2.0 data provider as a WSGI application.

Lists (``ListIdentifiers``, ``ListRecords``, ``ListSets``) are answered from
the base index and the change log over it (:mod:`kiel.oai.index`) with
keyset paging, so every page costs a few binary searches whatever its
depth. ``GetRecord`` reads the record directory itself and dates it as the
lists do. Responses are assembled as text so that the ``amf`` format
carries the stored bytes of the record unchanged.
"""

from __future__ import annotations

import calendar
import os
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, quote, unquote
from xml.sax.saxutils import escape as _xml_escape

from kiel import store as _store
from kiel.config import Config, defaults
from kiel.home import Home
from kiel.oai import formats
from kiel.oai.changes import Responses
from kiel.oai.index import Entry, IndexCache, IndexMissing, entry_for
from kiel.oai.token import BadToken, ListPosition, SetsPosition, Tokens, load_key
from kiel.oai.versions import read_id
from kiel.redist import record_path
from kiel.tist import iso

OAI_NS = "http://www.openarchives.org/OAI/2.0/"
GRANULARITY = "YYYY-MM-DDThh:mm:ssZ"
RETRY_AFTER = 10  # seconds a client is asked to wait when the provider is full
STYLESHEET = "kiel-oai.xsl"  # served at any path ending in this name
COMPRESSIONS = ("gzip", "deflate")

# verb -> (required, optional, takes a resumptionToken)
VERBS: dict[str, tuple[frozenset[str], frozenset[str], bool]] = {
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
# The schema's types of the request element's attributes (OAI-PMH.xsd):
# a value outside them is badArgument and is never echoed.
_PREFIX = re.compile(r"^[A-Za-z0-9\-_.!~*'()]+$")
_SETSPEC = re.compile(r"^[A-Za-z0-9\-_.!~*'()]+(:[A-Za-z0-9\-_.!~*'()]+)*$")
_DOMAIN = re.compile(r"^[A-Za-z][A-Za-z0-9\-]*(\.[A-Za-z][A-Za-z0-9\-]*)+$")
_URI = re.compile(r"^(?:[A-Za-z0-9\-_.!~*'();/?:@&=+$,\[\]#]|%[0-9A-Fa-f]{2})+$")
# What XML 1.0 cannot carry at all, and the C0/C1 controls it can but should not.
_NOT_XML = re.compile("[^\t\n\r\u0020-\u007e\u00a0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


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
    """Escape for XML text and double-quoted attributes; drop what XML cannot hold."""
    return _xml_escape(_NOT_XML.sub("\ufffd", text), {'"': "&quot;"})


def parse_datestamp(text: str, end: bool) -> tuple[int, str]:
    """``from``/``until`` as a tist, with its granularity ("day"/"second").

    A day ``until`` means the end of that day.
    """
    if _SECOND.match(text):
        fmt, gran = "%Y-%m-%dT%H:%M:%SZ", "second"
    elif _DAY.match(text):
        fmt, gran = "%Y-%m-%d", "day"
    else:
        raise OAIError("badArgument", "from and until take a UTC datestamp "
                       "(YYYY-MM-DD or YYYY-MM-DDThh:mm:ssZ)")
    try:
        tist = calendar.timegm(datetime.strptime(text, fmt).timetuple())
    except ValueError:
        raise OAIError("badArgument", f"{text} is not a valid date") from None
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


def load_set_names(path: str) -> dict[str, str]:
    """``<setSpec> TAB <name>`` per line; ``#`` lines and blank lines are ignored."""
    names: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                spec, tab, name = line.rstrip("\n").partition("\t")
                if tab and not spec.startswith("#") and _SETSPEC.match(spec) and name.strip():
                    names[spec] = name.strip()
    except OSError:
        pass
    return names


@dataclass(frozen=True)
class StoredRecord:
    id: str
    datestamp: int
    deleted: bool
    sets: tuple[str, ...]
    record_dir: str
    version: int


class _TooLarge(Exception):
    pass


class App:
    """``create_app(home_root)`` returns one; it is a WSGI callable."""

    def __init__(self, home_root: str, config: Config | None = None,
                 now: Callable[[], float] = time.time):
        self.home = Home(os.path.abspath(home_root))
        self.config = config if config is not None else self.home.config()
        self.indexes = IndexCache(self.home.root)
        self.tokens = Tokens(load_key(self.home.root))
        self.now = now
        self.responses = Responses(self.home.root)
        # At most max_requests answers are made at once (2 cores gain
        # nothing from more); others wait for a slot up to request_wait and
        # are answered 503 with Retry-After only after that.
        self.slots = threading.BoundedSemaphore(self.config.max_requests)
        self.prefix = f"oai:{self.config.repository_identifier}:"
        self._request = threading.local()  # what the verb methods need of the request
        # An operator who set base_url names the address harvesters use;
        # otherwise the address the request came to is the truth.
        self.fixed_base = (self.config.base_url
                           if self.config.base_url != defaults().base_url else None)
        names_file = self.config.set_names
        self.set_names = load_set_names(self.home.resolve_input(names_file)) if names_file else {}

    # --- WSGI --------------------------------------------------------------

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "POST"):
            return _plain(start_response, "405 Method Not Allowed",
                          "OAI-PMH takes GET and POST only.\n", [("Allow", "GET, POST")])
        if environ.get("PATH_INFO", "").endswith("/" + STYLESHEET):
            body = resources.files("kiel.oai").joinpath(STYLESHEET).read_bytes()
            return self._send(environ, start_response, body, "text/xsl; charset=utf-8")
        if not self.slots.acquire(timeout=self.config.request_wait):
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
        return self._send(environ, start_response, body, "text/xml; charset=utf-8")

    def _send(self, environ: dict[str, Any], start_response: Callable[..., Any], body: bytes,
              ctype: str) -> list[bytes]:
        headers = [("Content-Type", ctype), ("Vary", "Accept-Encoding")]
        coding = choose_encoding(environ.get("HTTP_ACCEPT_ENCODING", ""))
        if coding == "gzip":
            c = zlib.compressobj(4, zlib.DEFLATED, 31)  # the gzip wrapper
            body = c.compress(body) + c.flush()
        elif coding == "deflate":
            body = zlib.compress(body, 4)  # HTTP "deflate" is the zlib format
        if coding:
            headers.append(("Content-Encoding", coding))
        headers.append(("Content-Length", str(len(body))))
        start_response("200 OK", headers)
        return [body]

    def base_url(self, environ: dict[str, Any]) -> str:
        if self.fixed_base is not None:
            return self.fixed_base
        scheme = environ.get("wsgi.url_scheme", "http")
        host = environ.get("HTTP_HOST") or (f"{environ.get('SERVER_NAME', 'localhost')}:"
                                            f"{environ.get('SERVER_PORT', '80')}")
        path = quote(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""))
        return f"{scheme}://{host}{path or '/'}"

    def _arguments(self, environ: dict[str, Any]) -> list[tuple[str, str]] | None:
        if environ.get("REQUEST_METHOD") == "POST":
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            # The server refused larger bodies before reading them; this
            # holds for other WSGI servers too.
            if length > self.config.max_request_body:
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

    def respond(self, environ: dict[str, Any]) -> bytes:
        """The OAI-PMH document answering one request."""
        # Taken before the index is read: a change listed after this
        # moment has a datestamp at or after it, so a harvest from this
        # responseDate sees it.
        now = int(self.now())
        self.responses.note(now)
        base = self._request.base = self.base_url(environ)
        pairs = self._arguments(environ)
        if pairs is None:
            return self._document(now, base, None, [OAIError(
                "badArgument", "the arguments cannot be decoded")])
        verbs = [v for k, v in pairs if k == "verb"]
        if len(verbs) != 1 or verbs[0] not in VERBS:
            if not verbs:
                msg = "the verb argument is missing"
            elif len(verbs) > 1:
                msg = "the verb argument is repeated"
            else:
                msg = "the value of verb is not an OAI-PMH verb"
            return self._document(now, base, None, [OAIError("badVerb", msg)])
        verb = verbs[0]
        args: dict[str, str] = {}
        problems = []
        for k, v in pairs:
            if k == "verb":
                continue
            if k in args:
                problems.append(OAIError("badArgument", f"the argument {x(k)} is repeated"))
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
            if k not in allowed:
                continue
            if v == "":
                problems.append(OAIError("badArgument", f"the argument {k} is empty"))
            elif _NOT_XML.search(v) or any(ord(c) < 0x20 for c in v):
                problems.append(OAIError("badArgument",
                                         f"the argument {k} holds a control character"))
            elif k == "metadataPrefix" and not _PREFIX.match(v):
                problems.append(OAIError("badArgument", "metadataPrefix is not a prefix "
                                         "(letters, digits and -_.!~*'() only)"))
            elif k == "set" and not _SETSPEC.match(v):
                problems.append(OAIError("badArgument", "set is not a setSpec"))
            elif k == "identifier" and not _URI.match(v):
                problems.append(OAIError("badArgument", "identifier is not a URI"))
        if problems:
            return self._document(now, base, None, problems)
        request: dict[str, str] | None = {"verb": verb, **args}
        try:
            body = getattr(self, "_" + verb)(args)
        except (OAIError, Errors) as e:
            errors = e.errors if isinstance(e, Errors) else [e]
            # The protocol: after badVerb or badArgument the request element
            # carries the base URL only, no attributes.
            if any(err.code in ("badVerb", "badArgument") for err in errors):
                request = None
            return self._document(now, base, request, errors)
        return self._document(now, base, request, body)

    def _document(self, now: int, base: str, request: dict[str, str] | None,
                  body: bytes | list[OAIError]) -> bytes:
        attrs = ""
        if request is not None:
            attrs = "".join(f' {k}="{x(v)}"' for k, v in request.items())
        head = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<?xml-stylesheet type="text/xsl" href="{STYLESHEET}"?>\n'
            f'<OAI-PMH xmlns="{OAI_NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            f'xsi:schemaLocation="{OAI_NS} http://www.openarchives.org/OAI/2.0/OAI-PMH.xsd">\n'
            f"<responseDate>{iso(now)}</responseDate>\n"
            f"<request{attrs}>{x(base)}</request>\n"
        ).encode()
        if isinstance(body, list):
            body = "".join(f'<error code="{e.code}">{x(e.message)}</error>\n'
                           for e in body).encode("utf-8")
        return head + body + b"</OAI-PMH>\n"

    # --- helpers -----------------------------------------------------------

    def oai_identifier(self, record_id: str) -> str:
        return self.prefix + quote(record_id, safe=_ID_SAFE)

    def record_id(self, identifier: str) -> str:
        if not identifier.startswith(self.prefix) or len(identifier) == len(self.prefix):
            raise OAIError("idDoesNotExist", f"{identifier} is not an identifier of "
                           f"this repository (they start with {self.prefix})")
        return unquote(identifier[len(self.prefix):], errors="strict")

    def lookup(self, identifier: str) -> StoredRecord:
        """The record an identifier names, dated as the lists date it."""
        try:
            rid = self.record_id(identifier)
        except UnicodeDecodeError:
            raise OAIError("idDoesNotExist", f"{identifier} is not a valid identifier") from None
        record_dir = os.path.join(self.home.store, record_path(rid))
        newest = _store.newest_version(record_dir)
        # The redist folds case in RePEc handles; the identifier must name the
        # record's own id exactly, as lists give it.
        if newest is None or read_id(os.path.join(record_dir, newest[1])) != rid:
            raise OAIError("idDoesNotExist", f"no record {identifier}")
        served = self.indexes.get().find(rid)
        if served is None:
            # Written to the store but not yet listed (a change-log line
            # lost): dated from its files until a rebuild lists it.
            served = entry_for(record_dir)
            if served is None:
                raise OAIError("idDoesNotExist", f"no record {identifier}")
        return StoredRecord(rid, served.datestamp, served.deleted, served.sets, record_dir,
                            served.version)

    def _header(self, rid: str, datestamp: int, deleted: bool, sets: Iterable[str]) -> str:
        status = ' status="deleted"' if deleted else ""
        specs = "".join(f"<setSpec>{s}</setSpec>" for s in sets)
        return (f"<header{status}><identifier>{x(self.oai_identifier(rid))}</identifier>"
                f"<datestamp>{iso(datestamp)}</datestamp>{specs}</header>")

    def _record(self, prefix: str, row: Entry, record_dir: str | None = None) -> bytes:
        out = "<record>" + self._header(row.id, row.datestamp, row.deleted, row.sets)
        meta = None
        if not row.deleted:
            record_dir = record_dir or os.path.join(self.home.store, record_path(row.id))
            # None when the version has vanished since it was indexed: the
            # header alone is still a true statement (metadata is optional).
            meta = formats.metadata(prefix, record_dir, row.version, row.datestamp)
        if meta is None:
            return (out + "</record>\n").encode("utf-8")
        return (out + "<metadata>").encode("utf-8") + meta + b"</metadata></record>\n"

    @staticmethod
    def _format(prefix: str) -> None:
        if prefix not in formats.FORMATS:
            raise OAIError("cannotDisseminateFormat",
                           f"no metadata format {prefix} here (try {', '.join(formats.FORMATS)})")

    # --- the six verbs ------------------------------------------------------

    def _Identify(self, args: dict[str, str]) -> bytes:
        served = self.indexes.get()
        earliest = served.earliest if served.earliest is not None else 0
        c = self.config
        sample = self.oai_identifier("RePEc:aaa:wpaper:1")
        out = [
            "<Identify>",
            f"<repositoryName>{x(c.repository_name)}</repositoryName>",
            f"<baseURL>{x(self._request.base)}</baseURL>",
            "<protocolVersion>2.0</protocolVersion>",
            f"<adminEmail>{x(c.admin_email)}</adminEmail>",
            f"<earliestDatestamp>{iso(earliest)}</earliestDatestamp>",
            "<deletedRecord>persistent</deletedRecord>",
            f"<granularity>{GRANULARITY}</granularity>",
            *(f"<compression>{name}</compression>" for name in COMPRESSIONS),
        ]
        # The oai-identifier scheme wants a domain name; another repository
        # identifier is still served, without a description it would break.
        if _DOMAIN.match(c.repository_identifier):
            out.append(
                "<description><oai-identifier"
                " xmlns=\"http://www.openarchives.org/OAI/2.0/oai-identifier\""
                " xsi:schemaLocation=\"http://www.openarchives.org/OAI/2.0/oai-identifier"
                " http://www.openarchives.org/OAI/2.0/oai-identifier.xsd\">"
                f"<scheme>oai</scheme><repositoryIdentifier>{x(c.repository_identifier)}"
                "</repositoryIdentifier><delimiter>:</delimiter>"
                f"<sampleIdentifier>{x(sample)}</sampleIdentifier></oai-identifier></description>")
        if c.friends:
            out.append("<description><friends xmlns=\"http://www.openarchives.org/OAI/2.0/friends/\""
                       " xsi:schemaLocation=\"http://www.openarchives.org/OAI/2.0/friends/"
                       " http://www.openarchives.org/OAI/2.0/friends.xsd\">"
                       + "".join(f"<baseURL>{x(u)}</baseURL>" for u in c.friends)
                       + "</friends></description>")
        out.append("</Identify>\n")
        return "".join(out).encode("utf-8")

    def _ListMetadataFormats(self, args: dict[str, str]) -> bytes:
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

    def _ListSets(self, args: dict[str, str]) -> bytes:
        import bisect

        specs = self.indexes.get().set_specs
        start = 0
        if "resumptionToken" in args:
            try:
                start = bisect.bisect_right(specs, self.tokens.read_sets(
                    args["resumptionToken"]).after)
            except BadToken as e:
                raise OAIError("badResumptionToken", str(e)) from None
        if not specs:
            raise OAIError("noSetHierarchy", "the repository is empty, so it has no sets")
        # Sets that vanished under a token: the last page repeats the last set
        # (the schema wants one) and closes the list.
        start = min(start, len(specs) - 1)
        stop = min(start + self.config.page_size, len(specs))
        out = ["<ListSets>"]
        for spec in specs[start:stop]:
            known = self.set_names.get(spec)
            out.append(f"<set><setSpec>{spec}</setSpec>"
                       f"<setName>{x(known or set_name(spec))}</setName>")
            if known:
                out.append(
                    "<setDescription><oai_dc:dc xmlns:oai_dc=\"http://www.openarchives.org/OAI/2.0/oai_dc/\""
                    " xmlns:dc=\"http://purl.org/dc/elements/1.1/\" xsi:schemaLocation="
                    "\"http://www.openarchives.org/OAI/2.0/oai_dc/"
                    " http://www.openarchives.org/OAI/2.0/oai_dc.xsd\">"
                    f"<dc:title>{x(known)}</dc:title><dc:description>{x(set_name(spec))}"
                    "</dc:description></oai_dc:dc></setDescription>")
            out.append("</set>")
        if "resumptionToken" in args or stop < len(specs):
            # A list of sets that shrank under the token ends here: empty,
            # with the closing token, never an error in mid-harvest.
            token = (self.tokens.sets_token(SetsPosition(specs[stop - 1]))
                     if stop < len(specs) else "")
            out.append(f'<resumptionToken completeListSize="{len(specs)}" '
                       f'cursor="{min(start, len(specs))}">{token}</resumptionToken>')
        out.append("</ListSets>\n")
        return "".join(out).encode("utf-8")

    def _GetRecord(self, args: dict[str, str]) -> bytes:
        self.indexes.get()
        errors = []
        try:
            self._format(args["metadataPrefix"])
        except OAIError as e:
            errors.append(e)
        rec = None
        try:
            rec = self.lookup(args["identifier"])
        except OAIError as e:
            errors.append(e)
        if errors or rec is None:
            raise Errors(errors)
        row = Entry(rec.datestamp, rec.id, rec.deleted, rec.sets, rec.version)
        return (b"<GetRecord>" + self._record(args["metadataPrefix"], row, rec.record_dir)
                + b"</GetRecord>\n")

    def _ListIdentifiers(self, args: dict[str, str]) -> bytes:
        return self._list("ListIdentifiers", args)

    def _ListRecords(self, args: dict[str, str]) -> bytes:
        return self._list("ListRecords", args)

    def _list(self, verb: str, args: dict[str, str]) -> bytes:
        served = self.indexes.get()
        after = None
        from_: int | None
        until: int | None
        if "resumptionToken" in args:
            try:
                pos = self.tokens.read_list(args["resumptionToken"], verb)
            except BadToken as e:
                raise OAIError("badResumptionToken", str(e)) from None
            prefix, set_spec, from_ = pos.prefix, pos.set, pos.from_
            until, after = pos.until, pos.after
            if prefix not in formats.FORMATS:
                raise OAIError("badResumptionToken", f"format {prefix} is no longer offered")
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
            if set_spec is not None and not served.set_specs:
                raise OAIError("noSetHierarchy", "the repository is empty, so it has no sets")
        page = served.page(set_spec, from_, until, after, self.config.page_size)
        rows = page.rows
        if not rows and after is not None:
            # A token's list continues to its end (issue 15, case 5): when
            # every item left moved past until between two pages, the last
            # page repeats the last item still in the list (the schema wants
            # one; harvesters take a repeat in their stride) and closes it.
            last = served.last_upto(set_spec, from_, after)
            rows = [last] if last is not None else []
        if not rows:
            raise OAIError("noRecordsMatch", "no records match these arguments")
        out = [f"<{verb}>".encode()]
        for r in rows:
            if verb == "ListIdentifiers":
                out.append(self._header(r.id, r.datestamp, r.deleted, r.sets).encode("utf-8")
                           + b"\n")
            else:
                out.append(self._record(prefix, r))
        if after is not None or page.more:
            token = ""
            if page.more:
                last = page.rows[-1]
                token = self.tokens.list_token(ListPosition(
                    verb, prefix, set_spec, from_, until,
                    (last.datestamp, last.id.encode("utf-8", "surrogateescape"))))
            cursor = min(page.cursor, max(0, page.total - len(rows)))
            out.append(f'<resumptionToken completeListSize="{page.total}" cursor="{cursor}">'
                       f"{token}</resumptionToken>".encode())
        out.append(f"</{verb}>\n".encode())
        return b"".join(out)


def choose_encoding(accept: str) -> str | None:
    """``gzip`` or ``deflate`` when the client accepts one (q > 0), else None."""
    q: dict[str, float] = {}
    for part in accept.lower().split(","):
        name, _, params = part.strip().partition(";")
        weight = 1.0
        for p in params.split(";"):
            k, _, v = p.strip().partition("=")
            if k == "q":
                try:
                    weight = float(v)
                except ValueError:
                    weight = 0.0
        if name:
            q[name.strip()] = weight
    best = None
    for name in COMPRESSIONS:
        w = q.get(name, q.get("*", 0.0))
        if w > 0 and (best is None or w > q.get(best, q.get("*", 0.0))):
            best = name
    return best


def _plain(start_response: Callable[..., Any], status: str, text: str,
           extra: list[tuple[str, str]] | None = None) -> list[bytes]:
    body = text.encode("utf-8")
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(body)))] + (extra or []))
    return [body]


def create_app(home_root: str, config: Config | None = None,
               now: Callable[[], float] = time.time) -> App:
    """The WSGI application serving the home at ``home_root``."""
    return App(home_root, config, now)
