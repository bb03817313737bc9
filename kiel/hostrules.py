"""Host rules: where one host puts its full-text link, in data.

Some publishers offer the PDF only through a link that no generic rule can
tell from the other links of the page. The table in
``kiel/data/host_rules.json`` says, per host, which links to read (an XPath
selector) and which form the URL must have (a regular expression), as the
Internet Archive's ingest code does with its own table. A rule applies to a
page on one of its hosts or their subdomains (docs/discovery.md, Host rules).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lxml.etree import XPath


@dataclass(frozen=True)
class HostRule:
    name: str  # noted as host:<name>
    hosts: tuple[str, ...]  # lower case; a subdomain matches too
    select: str  # XPath 1.0, giving URL strings
    form: str  # the resolved URL must match (searched)
    example: str  # a page of the host that follows this markup

    def applies_to(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return any(host == h or host.endswith("." + h) for h in self.hosts)


@dataclass(frozen=True)
class Compiled:
    rule: HostRule
    xpath: XPath
    form: re.Pattern[str]


def parse(text: str) -> tuple[HostRule, ...]:
    """The rules of a JSON table; a ValueError names a malformed rule."""
    data = json.loads(text)
    out = []
    for i, raw in enumerate(data.get("rules", ())):
        try:
            out.append(HostRule(str(raw["name"]), tuple(h.lower() for h in raw["hosts"]),
                                str(raw["select"]), str(raw["form"]), str(raw["example"])))
        except (KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"host rule {i + 1}: {e}") from None
    return tuple(out)


@lru_cache(maxsize=1)
def rules() -> tuple[Compiled, ...]:
    """The table shipped with Kiel, compiled once."""
    from lxml import etree

    text = resources.files("kiel").joinpath("data/host_rules.json").read_text("utf-8")
    return tuple(Compiled(r, etree.XPath(r.select), re.compile(r.form)) for r in parse(text))


def for_host(host: str) -> tuple[Compiled, ...]:
    return tuple(c for c in rules() if c.rule.applies_to(host))
