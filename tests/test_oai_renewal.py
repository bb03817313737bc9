"""The provider over a store made by the real renewal, gone records included."""

from __future__ import annotations

from kiel.oai import build, create_app
from kiel.tist import iso

from kit.homes import run, text, write_amf
from kit.oai import OAI, Client  # Client validates every response


def headers(client: Client, **args) -> list[tuple[str | None, str | None, bool]]:
    root = client.get(verb="ListIdentifiers", metadataPrefix="oai_dc", **args)
    return [(h.findtext(OAI + "identifier"), h.findtext(OAI + "datestamp"),
             h.get("status") == "deleted") for h in root.iter(OAI + "header")]


def test_renewed_store_is_served_and_gone_records_are_deleted(home, clock, tmp_path):
    ids = ["RePEc:aaa:wpaper:1", "RePEc:aaa:wpaper:2", "other-id:3"]
    src = tmp_path / "in" / "a.amf.xml"
    write_amf(src, *(text(i) for i in ids))
    run(home, src, clock=clock)
    t1 = int(clock.t)
    build(home.root)
    client = Client(create_app(home.root, now=clock))  # the renewal's clock
    oai = [f"oai:kiel.example.org:{i}" for i in ids]
    assert headers(client) == [(o, iso(t1), False) for o in oai]

    clock.advance(1000)
    write_amf(src, text(ids[0]), text(ids[2]))
    run(home, src, clock=clock)
    build(home.root)
    got = headers(client)
    assert (oai[1], iso(int(clock.t)), True) in got
    assert headers(client, **{"from": iso(t1 + 1)}) == [(oai[1], iso(int(clock.t)), True)]
    root = client.get(verb="GetRecord", metadataPrefix="amf", identifier=oai[1])
    assert root.find(f".//{OAI}header").get("status") == "deleted"
    assert root.find(f".//{OAI}metadata") is None

    clock.advance(1000)
    write_amf(src, *(text(i) for i in ids))
    run(home, src, clock=clock)
    build(home.root)
    assert [h[2] for h in headers(client)] == [False, False, False]
