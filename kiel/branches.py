"""Branches: XPath expressions, relative to ``/amf/text``, that select URLs.

docs/contract.md: the software prefixes ``/amf/text/``; unprefixed element names
match AMF elements. XPath 1.0 has no default namespace, so each unprefixed
element name test is rewritten to ``amf:name`` before it is compiled; the
stored records carry the AMF namespace on every AMF element (see
:mod:`kiel.records`), so the rewritten expression matches records whether
their source was namespaced or not.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

from lxml import etree

from kiel import AMF_NS
from kiel.errors import BranchesError

# Prefixes a branch may use: AMF and the RePEc extension seen in real data.
NAMESPACES = {"amf": AMF_NS, "repec": "http://repec.openlib.org"}

_TOKEN = re.compile(
    r"""\s*(
      "[^"]*" | '[^']*'
    | \d+(?:\.\d*)? | \.\d+
    | \.\. | :: | // | != | <= | >=
    | [A-Za-z_\u00C0-\uFFFF][\w.\-\u00B7\u00C0-\uFFFF]*
      (?: :(?:[A-Za-z_\u00C0-\uFFFF][\w.\-\u00B7\u00C0-\uFFFF]*|\*) )?
    | [./()\[\]@,|+\-=<>*$]
    )""",
    re.VERBOSE,
)
_OPERATORS = {
    "and", "or", "mod", "div", "/", "//", "|", "+", "-", "=", "!=", "<", "<=", ">", ">=", "*",
}
_NODE_TYPES = {"comment", "text", "processing-instruction", "node"}


def _tokens(expr: str) -> list[str]:
    out = []
    pos = 0
    expr = expr.rstrip()
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            raise ValueError(f"unexpected character {expr[pos:].lstrip()[:1]!r} at {pos + 1}")
        out.append(m.group(1))
        pos = m.end()
    return out


def _is_name(tok: str) -> bool:
    return bool(tok) and (tok[0].isalpha() or tok[0] == "_")


def rewrite(expr: str) -> str:
    """Prefix unprefixed element name tests with ``amf:``.

    Raises ValueError for an expression that cannot be tokenized.
    """
    toks = _tokens(expr)
    out = []
    axis = None
    for i, tok in enumerate(toks):
        prev = toks[i - 1] if i else None
        nxt = toks[i + 1] if i + 1 < len(toks) else None
        if _is_name(tok):
            follows_operand = prev is not None and prev not in ("@", "::", "(", "[", ",") \
                and prev not in _OPERATORS
            if prev == "$" or nxt in ("(", "::") or follows_operand:
                if nxt == "::":
                    axis = tok
                out.append(tok)
                continue
            attribute = prev == "@" or (prev == "::" and axis in ("attribute", "namespace"))
            if ":" not in tok and not attribute:
                tok = "amf:" + tok
            axis = None
        out.append(tok)
    text = ""
    for tok in out:
        text += tok if (not text or text.endswith("$")) else " " + tok
    return text


def is_absolute(expr: str) -> bool:
    toks = _tokens(expr)
    for i, tok in enumerate(toks):
        if tok in ("/", "//"):
            prev = toks[i - 1] if i else None
            if prev is None or prev in ("(", "[", ",", "|") or \
                    (prev in _OPERATORS and prev not in ("*",)):
                return True
    return False


@dataclass(frozen=True)
class Branch:
    xpath: str  # as written in branches.xml
    line: int | None
    compiled: etree.XPath
    # Whether an HTML answer of this branch's objects is searched for the
    # full text it offers (docs/discovery.md); attribute ``discover``.
    discover: bool = False

    def evaluate(self, text_el: etree._Element) -> list[tuple[str | None, str | None]]:
        """``(value, None)`` per URL found, ``(raw, reason)`` per value skipped."""
        try:
            result = self.compiled(text_el)
        except etree.XPathError as e:
            return [(None, f"xpath error: {e}")]
        if isinstance(result, (bool, float)):
            return [(str(result), "branch yields a number or boolean, not nodes")]
        if isinstance(result, str):
            result = [result]
        out: list[tuple[str | None, str | None]] = []
        for item in result:
            if isinstance(item, str):
                value = str(item)
            elif isinstance(item, etree._Element):
                # lxml-stubs allows bytes; lxml gives str text on Python 3.
                value = "".join(cast(Iterator[str], item.itertext()))
            else:
                out.append((str(item), "not text"))
                continue
            value = value.strip()
            if value:
                out.append((value, None))
            else:
                out.append(("", "empty value"))
        return out


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}, line {self.line}"
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class Check:
    branches: tuple[Branch, ...]
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def _line(el: etree._Element) -> int | None:
    # lxml-stubs declares ``sourceline`` as a bare ``...``; lxml gives an int,
    # or None for an element that was not parsed from a document.
    return cast("int | None", el.sourceline)


def check(path: str, data: bytes | None = None) -> Check:
    """Validate a branches file; every problem names its line."""
    if data is None:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            return Check((), (Problem(path, None, f"cannot read: {e.strerror}"),))
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as e:
        return Check((), (Problem(path, e.lineno or None, f"not well-formed XML: {e.msg}"),))
    if root.tag != "branches":
        return Check((), (Problem(path, _line(root), f"root element is <{root.tag}>, "
                                  "expected <branches>"),))
    problems: list[Problem] = []
    found: list[Branch] = []
    seen: dict[str, int | None] = {}
    for el in root:
        if not isinstance(el.tag, str):
            continue  # comments, processing instructions
        if el.tag != "branch":
            problems.append(Problem(path, _line(el), f"unknown element <{el.tag}>"))
            continue
        xpath = el.get("xpath")
        if xpath is None or not xpath.strip():
            problems.append(Problem(path, _line(el), "branch without xpath"
                                    if xpath is None else "branch with an empty xpath"))
            continue
        xpath = xpath.strip()
        if xpath in seen:
            problems.append(Problem(path, _line(el),
                                    f"duplicate branch {xpath!r} (first on line {seen[xpath]})"))
            continue
        seen[xpath] = _line(el)
        try:
            if is_absolute(xpath):
                problems.append(Problem(path, _line(el), f"absolute path {xpath!r}: branches "
                                        "are relative to /amf/text, which Kiel adds"))
                continue
            compiled = etree.XPath(rewrite(xpath), namespaces=NAMESPACES)
        except (ValueError, etree.XPathSyntaxError) as e:
            problems.append(Problem(path, _line(el),
                                    f"xpath {xpath!r} does not compile: {e}"))
            continue
        discover = discover_attribute(el.get("discover"), xpath)
        if isinstance(discover, str):
            problems.append(Problem(path, _line(el), discover))
            continue
        branch = Branch(xpath, _line(el), compiled, discover)
        failure = _fails_on_every_record(branch)
        if failure is not None:
            problems.append(Problem(path, _line(el), failure))
            continue
        found.append(branch)
    if not found and not problems:
        problems.append(Problem(path, _line(root), "no branch at all"))
    return Check(tuple(found), tuple(problems))


# The core functions of XPath 1.0 (section 4), the only ones a branch may call.
_XPATH_FUNCTIONS = {
    "last", "position", "count", "id", "local-name", "namespace-uri", "name", "string",
    "concat", "starts-with", "contains", "substring-before", "substring-after", "substring",
    "string-length", "normalize-space", "translate", "boolean", "not", "true", "false", "lang",
    "number", "sum", "floor", "ceiling", "round",
}


def _empty_text() -> etree._Element:
    root = etree.fromstring(f'<amf xmlns="{AMF_NS}"><text id="kiel:empty"/></amf>'.encode())
    return root[0]


def _fails_on_every_record(branch: Branch) -> str | None:
    """Evaluate the branch on an empty AMF text: an error there (an undefined
    prefix, function or variable) or a number or boolean in place of nodes
    happens on every record, so it is a mistake in the branch, not in data."""
    x = branch.xpath
    for value, reason in branch.evaluate(_empty_text()):
        if reason is None or reason == "empty value":
            continue
        if reason.startswith("xpath error: "):
            error = reason[len("xpath error: "):]
            if "namespace prefix" in error:
                prefixes = sorted({t.split(":", 1)[0] for t in _tokens(x)
                                   if ":" in t and not t.startswith(("'", '"'))
                                   and t.split(":", 1)[0] not in NAMESPACES} or {"?"})
                return (f"xpath {x!r} fails on every record: namespace prefix "
                        f"{', '.join(repr(p) for p in prefixes)} is not defined (Kiel defines "
                        f"{', '.join(sorted(NAMESPACES))})")
            if "function" in error:
                toks = _tokens(x)
                names = sorted({t for i, t in enumerate(toks[:-1]) if toks[i + 1] == "("
                                and _is_name(t) and t not in _XPATH_FUNCTIONS
                                and t not in _NODE_TYPES} or {"?"})
                return (f"xpath {x!r} fails on every record: function "
                        f"{', '.join(repr(n) for n in names)} does not exist in XPath 1.0")
            return f"xpath {x!r} fails on every record: {error.lower()}"
        if reason.startswith("branch yields a number or boolean"):
            return (f"xpath {x!r} yields a number or boolean ({value} on an empty record), "
                    "never a URL: a branch must select elements, attributes or text")
        return f"xpath {x!r} selects nodes that are not text, elements or attributes"
    return None


def missing(path: str) -> BranchesError:
    """The error for a branches file that is not there: most often a wrong home."""
    path = os.path.abspath(path)
    etc = os.path.dirname(path)
    hint = (f"kiel init --home {os.path.dirname(etc)} makes a home"
            if os.path.basename(etc) == "etc" else "kiel init makes a home")
    return BranchesError(f"{path} does not exist: is --home right? ({hint})")
# Discovery is on by default where landing pages are: the displaypage branch.
DISCOVER_DEFAULT = frozenset({"displaypage"})


def discover_attribute(value: str | None, xpath: str) -> bool | str:
    """The ``discover`` attribute of a branch, or the problem with it."""
    if value is None:
        return xpath in DISCOVER_DEFAULT
    v = value.strip().lower()
    if v in ("yes", "no"):
        return v == "yes"
    return f"discover={value!r}: must be yes or no"


def load(path: str) -> tuple[Branch, ...]:
    """The branches of a valid file; BranchesError listing every problem."""
    if not os.path.lexists(path):
        raise missing(path)
    result = check(path)
    if not result.ok:
        raise BranchesError("invalid branches:\n" + "\n".join(f"  {p}" for p in result.problems))
    return result.branches
