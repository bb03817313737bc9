"""Incremental harvesting with Sickle across real renewals (issue 15, cases 1 to 7).

The protocol's promise: a harvest ``from`` the last harvest's
``responseDate`` sees every record created, changed or deleted since. Each
step below changes the input, renews with the real engine on the real
clock, harvests from the previous ``responseDate`` and asserts exactly the
changes. Every answer the server sends is validated against the schemas.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from lxml import etree
from sickle import Sickle
from sickle.oaiexceptions import BadArgument, NoRecordsMatch

from kiel.oai import create_app, rebuild
from kiel.oai.server import Background
from kiel.redist import record_path

from kit.homes import renewal_gone, run, text, write_amf
from kit.oai import LIMITS, Validating
from kit.servers import Answer, Site, wait_until

REPO = "kiel.example.org"
OAI = "{http://www.openarchives.org/OAI/2.0/}"


class Objects:
    """Object server: ``/ok/*`` answers 200 at once, ``/slow/*`` waits for ``release``."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.status = {"/flaky": 404}
        self.site = Site(self.answer)
        self.url = self.site.url()

    def answer(self, host: str, path: str) -> Answer:
        if path.startswith("/slow"):
            self.release.wait(30)
        status = self.status.get(path, 200)
        return status, [("Content-Type", "text/plain")], b"%s %d\n" % (path.encode(), status)

    def close(self) -> None:
        self.release.set()
        self.site.close()


@pytest.fixture
def objects():
    o = Objects()
    yield o
    o.close()


class Harvester(Sickle):  # type: ignore[misc]  # sickle is untyped
    """Sickle, remembering its first answer: the responseDate a harvester keeps."""

    first = None

    def harvest(self, **kwargs):
        response = super().harvest(**kwargs)
        if self.first is None:
            self.first = response
        return response


def harvest(url: str, since: str | None) -> tuple[str, dict[str, tuple[str, bool]]]:
    """(responseDate of the first answer, {record id: (datestamp, deleted)})."""
    sickle = Harvester(url, max_retries=0, timeout=10)
    args = {"metadataPrefix": "oai_dc", "ignore_deleted": False}
    if since is not None:
        args["from"] = since
    got: dict[str, tuple[str, bool]] = {}
    try:
        for h in sickle.ListIdentifiers(**args):
            got[h.identifier.removeprefix(f"oai:{REPO}:")] = (h.datestamp, h.deleted)
    except NoRecordsMatch:
        pass
    assert sickle.first is not None, "no answer at all"
    return sickle.first.xml.findtext(OAI + "responseDate"), got


def record_xml(url: str, rid: str) -> bytes:
    rec = Sickle(url).GetRecord(identifier=f"oai:{REPO}:{rid}", metadataPrefix="oai_dc")
    return etree.tostring(rec.xml)


def next_second() -> None:
    """Let the clock pass into a new second, so "since" separates the steps."""
    time.sleep(1.05 - (time.time() % 1))


def ids_of(texts: dict[str, str]) -> list[str]:
    return list(texts.values())


def test_incremental_harvests_see_every_change(home, tmp_path, objects):
    src = tmp_path / "in" / "a.amf.xml"
    ok, slow, flaky = objects.url + "/ok/a.pdf", objects.url + "/slow/a.pdf", objects.url + "/flaky"
    recs = {"A": text("RePEc:aaa:wpaper:1", ok), "B": text("RePEc:aaa:wpaper:2"),
            "C": text("other:3", flaky)}
    write_amf(src, *recs.values())
    run(home, src, clock=time.time)
    next_second()
    checked = Validating(create_app(home.root))
    with Background(checked, LIMITS) as server:
        url = server.url
        r0, got = harvest(url, None)
        assert set(got) == {"RePEc:aaa:wpaper:1", "RePEc:aaa:wpaper:2", "other:3"}

        # Case 6: the request element names the address the server answered on.
        ident = Sickle(url).Identify()
        assert ident.xml.getparent().findtext(OAI + "request") == url
        assert ident.baseURL == url
        # Case 7: a control character is badArgument, and the answer stays
        # well-formed and valid (the middleware checks every answer).
        for bad in ({"set": "RePEc\x01"}, {"set": "RePEc:"}, {"metadataPrefix": "a\"<&>'b"}):
            with pytest.raises(BadArgument):
                list(Sickle(url).ListIdentifiers(**{"metadataPrefix": "oai_dc", **bad}))
        next_second()

        # Case 1: a new version is listed while the renewal is still running
        # (A's object hangs), dated no earlier than when it became visible.
        recs["A"] = text("RePEc:aaa:wpaper:1", slow, extra="<abstract>new</abstract>")
        write_amf(src, *recs.values())
        renewal = threading.Thread(target=run, args=(home, src), kwargs={"clock": time.time})
        renewal.start()
        a_dir = Path(home.store) / record_path("RePEc:aaa:wpaper:1")
        deadline = time.monotonic() + 15
        while len(list(a_dir.glob("*.amf.xml"))) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        r1, got = harvest(url, r0)
        assert renewal.is_alive()  # still at work on A's object
        oai_state = os.popen("cat " + home.var + "/oai/changes/*; cat " + home.var
                             + "/oai/current/records").read
        assert set(got) == {"RePEc:aaa:wpaper:1"} and got["RePEc:aaa:wpaper:1"][0] >= r0, (
            r0, got, oai_state())
        objects.release.set()
        renewal.join(30)
        next_second()
        r2, got = harvest(url, r1)
        # Only what became visible at or after r1: A again at most if it was
        # listed in the very second of r1; nothing else changed.
        assert set(got) <= {"RePEc:aaa:wpaper:1"}
        assert all(ds >= r1 for ds, _d in got.values())
        next_second()

        # Case 4: C's object now succeeds: oai_dc is made from the version
        # alone, so nothing changed and nothing is listed.
        before = record_xml(url, "other:3")
        objects.status["/flaky"] = 200
        run(home, src, clock=time.time)  # the same input: no version written
        after = record_xml(url, "other:3")
        r3, got = harvest(url, r2)
        assert got == {}
        assert before == after
        next_second()

        # Case 3: B leaves the input (deleted), then comes back unchanged.
        write_amf(src, recs["A"], recs["C"])
        run(home, src, clock=time.time)
        r4, got = harvest(url, r3)
        assert got == {"RePEc:aaa:wpaper:2": (got["RePEc:aaa:wpaper:2"][0], True)}
        next_second()
        write_amf(src, *recs.values())
        run(home, src, clock=time.time)
        r5, got = harvest(url, r4)
        assert set(got) == {"RePEc:aaa:wpaper:2"} and got["RePEc:aaa:wpaper:2"][1] is False
        next_second()

        # Case 2: a renewal killed after it wrote a version: the change was
        # listed when written and survives the kill, the next run and a rebuild.
        recs["B"] = text("RePEc:aaa:wpaper:2", slow, extra="<abstract>killed</abstract>")
        write_amf(src, *recs.values())
        objects.release.clear()
        env = {**os.environ, "KIEL_HOME": home.root}
        proc = subprocess.Popen([sys.executable, "-m", "kiel", "renew", "--home", home.root,
                                 str(src)], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        b_dir = Path(home.store) / record_path("RePEc:aaa:wpaper:2")
        deadline = time.monotonic() + 20
        while len(list(b_dir.glob("*.amf.xml"))) < 2:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert wait_until(lambda: renewal_gone(home), 10)  # its worker processes too
        objects.release.set()
        r6, got = harvest(url, r5)
        assert set(got) == {"RePEc:aaa:wpaper:2"}
        _r, everything = harvest(url, None)
        run(home, src, clock=time.time)  # nothing new to write
        rebuild(home.root)
        _r, again = harvest(url, None)
        assert again == everything  # no datestamp moved back or forward
        _r, got = harvest(url, r6)
        assert set(got) <= {"RePEc:aaa:wpaper:2"}
    assert checked.checked > 10 and not checked.failures, checked.failures[:1]
