"""Every namespace of the input survives serialization (issue 11).

For each record of every real sample (and of a file written to hold
namespaced attributes), the stored version's ``text`` and the input's
``text`` have the same Canonical XML 2.0 form once prefixes are rewritten
(so only namespaces, names, values, text and comments count). AMF written
without a namespace is given it, as the contract says.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from lxml import etree

from kiel import AMF_NS, records

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DIRS = [ROOT / "samples" / "amf", Path("/work/shared/samples")]

NAMESPACED = b"""<?xml version="1.0" encoding="UTF-8"?>
<amf xmlns="http://amf.openlib.org" xmlns:amf="http://amf.openlib.org"
     xmlns:repec="http://repec.openlib.org" xmlns:u="urn:unused">
  <text id="RePEc:aaa:wpaper:ns1" amf:status="draft" xml:lang="en">
    <title amf:lang="de">Titel</title>
    <!-- a comment -->
    <file><url>http://example.org/a.pdf</url><repec:function
      repec:kind="main">x</repec:function></file>
    <q xmlns="urn:q" xmlns:b="urn:q" b:y="3" z="4"><r/></q>
  </text>
  <text id="RePEc:aaa:wpaper:ns2" xmlns:a="http://amf.openlib.org" a:x="1"><title>t</title></text>
</amf>
"""

BARE = b"""<text xmlns:amf="http://amf.openlib.org" id="RePEc:aaa:wpaper:ns3" amf:type="x">
<title>no namespace on the elements</title></text>
"""


def canonical(el: etree._Element) -> str:
    return etree.canonicalize(el, with_comments=True, rewrite_prefixes=True)


def expected_texts(path: Path) -> dict[str, str]:
    """The input's top-level text nouns, AMF-namespaced as the contract says, canonical."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.parse(str(path), parser).getroot()
    tops = [root] if etree.QName(root).localname == "text" else list(root)
    out = {}
    for el in tops:
        if (not isinstance(el.tag, str) or etree.QName(el).localname != "text"
                or el.get("id") is None):
            continue
        el = copy.deepcopy(el)
        el.tail = None
        for node in el.iter():
            if isinstance(node.tag, str) and node.tag[0] != "{":
                node.tag = f"{{{AMF_NS}}}{node.tag}"
        out[(el.get("id") or "").strip()] = canonical(el)
    return out


def sample_files() -> list[Path]:
    return sorted(p for d in SAMPLE_DIRS if d.is_dir() for p in d.iterdir()
                  if p.suffix in (".xml", ".amf"))


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> list[Path]:
    d = tmp_path_factory.mktemp("ns")
    (d / "namespaced.amf.xml").write_bytes(NAMESPACED)
    (d / "bare.text.xml").write_bytes(BARE)
    return [d / "namespaced.amf.xml", d / "bare.text.xml"]


def check(path: Path) -> int:
    want = expected_texts(path)
    got = {}
    for item in records.read_file(str(path)):
        assert not isinstance(item, records.Problem), item
        if isinstance(item, records.Record):
            got[item.id] = canonical(records.parse_stored(item.xml))
    assert got == want
    return len(got)


def test_samples_keep_every_namespace():
    files = sample_files()
    assert len(files) >= 7
    assert sum(check(p) for p in files) >= 9


def test_namespaced_attributes_keep_their_namespace(hostile):
    assert check(hostile[0]) == 2 and check(hostile[1]) == 1
    first, second = records.read_file(str(hostile[0]))
    text = records.parse_stored(first.xml)
    assert text.get(f"{{{AMF_NS}}}status") == "draft" and text.get("status") is None
    assert text[0].get(f"{{{AMF_NS}}}lang") == "de"
    assert records.parse_stored(second.xml).get(f"{{{AMF_NS}}}x") == "1"


def test_serialization_is_deterministic_and_unchanged_for_the_rest(hostile, tmp_path):
    # the same record written differently (prefix, attribute order, quotes) gives equal bytes
    other = NAMESPACED.replace(b'xmlns:a="http://amf.openlib.org" a:x="1"',
                               b"a:x='1' xmlns:a='http://amf.openlib.org'")
    (tmp_path / "other.xml").write_bytes(other)
    assert ([r.xml for r in records.read_file(str(tmp_path / "other.xml"))]
            == [r.xml for r in records.read_file(str(hostile[0]))])
    # records without a namespaced attribute keep Canonical XML 2.0, byte for byte
    for path in sample_files():
        for item in records.read_file(str(path)):
            if isinstance(item, records.Record):
                text = records.parse_stored(item.xml)
                c14n2 = etree.tostring(text.getparent(), method="c14n2", with_comments=True)
                assert item.xml == records.XML_DECL + c14n2 + b"\n"
