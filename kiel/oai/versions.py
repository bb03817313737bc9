"""What the provider reads of a stored version file: the record id it names.

Kept apart from the index (:mod:`kiel.oai.index`) and the change log
(:mod:`kiel.oai.changes`), which both read it: neither imports the other
for it.
"""

from __future__ import annotations

import os

from lxml import etree

from kiel.notes import open_regular


def read_id(version_path: str) -> str | None:
    """The ``id`` of the ``text`` noun of a stored version, read lazily."""
    try:
        # Our own file object: leaving iterparse early must still close it.
        with os.fdopen(open_regular(version_path, os.O_RDONLY), "rb") as f:
            for _event, el in etree.iterparse(f, events=("start",), resolve_entities=False,
                                              no_network=True, load_dtd=False):
                if el.getparent() is not None:
                    rid = el.get("id")
                    return rid.strip() if rid else None
    except (OSError, etree.XMLSyntaxError):
        return None
    return None
