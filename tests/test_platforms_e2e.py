"""Deposits through the real engine: ``kiel renew`` against the platforms' own host names.

A deposit URL names a fixed host (zenodo.org, osf.io, figshare.com, ...), and the
platform helpers build more URLs on fixed hosts (api.osf.io, ndownloader.figshare.com).
Nothing here reroutes them: the test runs in a private network and mount namespace
(``unshare --net --mount``, as root), where

- a hosts file bind-mounted over /etc/hosts maps every platform host to 127.0.0.1;
- a CA made for the run (openssl(1)) is appended to bind-mounted copies of the CA
  bundles: the system's and certifi's, which httpx (so Kiel's fetcher) trusts;
- one HTTPS server on 127.0.0.1:443, with a certificate of that CA for every
  platform host, answers from tests/fixtures/platforms/*/routes.json.

So ``kiel renew`` resolves, dials, verifies TLS and stores exactly as in production,
and ``kiel verify``, ``show`` and ``report`` read the store the engine wrote.

Outside the namespace this module holds one test, which makes the namespace and
runs this module again inside it (``KIEL_PLATFORMS_NETNS`` names the run's
directory); inside, the tests below run. Where ``unshare`` is refused (not
root, or no namespaces), that one test is skipped and says why.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest

from kiel.home import Home, Lock
from kiel.platforms import read_manifests
from kiel.redist import record_path

from kit.cli import kiel, renew
from kit.homes import make_home, text, write_amf
from kit.servers import Answer, Site

FIXTURES = Path(__file__).parent / "fixtures" / "platforms"
PLATFORMS = ("zenodo", "dataverse", "figshare", "dryad", "osf", "archiveorg")
INSIDE = os.environ.get("KIEL_PLATFORMS_NETNS")
RID = "RePEc:tst:dep:1"


def routes() -> dict[str, tuple[str, dict[str, Any]]]:
    """host/path?query -> (platform, route), from every platform's routes.json."""
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for p in PLATFORMS:
        for key, route in json.loads((FIXTURES / p / "routes.json").read_text()).items():
            out[key] = (p, route)
    return out


def hosts() -> list[str]:
    """Every host the fixtures answer for or name in an answer the helpers follow."""
    names = {key.split("/", 1)[0] for key in routes()}
    for path in FIXTURES.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".html", ".xml"):
            names |= set(re.findall(r"https://([a-z0-9.-]+\.[a-z]+)", path.read_text(
                errors="replace")))
    names.add("doi.org")
    return sorted(names)


# --- outside: make the namespace and run this module in it ----------------------------------

def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca_and_certificate(d: Path, names: list[str]) -> None:
    """ca.pem (a CA made for this run) and cert.pem/key.pem it signed for ``names``."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             "/CN=Kiel test CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=platforms.test",
             "-keyout", "key.pem", "-out", "cert.csr", cwd=d)
    (d / "ext.cnf").write_text("subjectAltName=" + ",".join(f"DNS:{n}" for n in names)
                               + ",IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", "cert.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf", "-out", "cert.pem", cwd=d)


if not INSIDE:
    @pytest.mark.timeout(900)
    def test_deposits_through_kiel_renew_in_a_private_network(tmp_path: Path) -> None:
        if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
            pytest.skip("needs root, unshare(1) and ip(8) for a private network namespace")
        probe = subprocess.run(["unshare", "--net", "--mount", "true"], capture_output=True,
                               text=True)
        if probe.returncode != 0:
            pytest.skip(f"unshare --net --mount refused here: {probe.stderr.strip()}")
        if not shutil.which("openssl"):
            pytest.skip("openssl(1) is not installed")
        import certifi

        names = hosts()
        make_ca_and_certificate(tmp_path, names)
        ca = (tmp_path / "ca.pem").read_text()
        (tmp_path / "hosts").write_text("127.0.0.1 localhost " + " ".join(names)
                                    + "\n::1 localhost\n")
        mounts = [(tmp_path / "hosts", "/etc/hosts")]
        bundles = {certifi.where()}
        if os.path.exists("/etc/ssl/certs/ca-certificates.crt"):
            bundles.add("/etc/ssl/certs/ca-certificates.crt")
        for n, bundle in enumerate(sorted(bundles)):
            copy = tmp_path / f"bundle{n}.pem"
            copy.write_text(Path(bundle).read_text() + "\n" + ca)
            mounts.append((copy, bundle))
        script = "set -e\nip link set lo up\n" + "".join(
            f"mount --bind '{src}' '{dst}'\n" for src, dst in mounts) + (
            f"exec '{sys.executable}' -m pytest -q -p no:cacheprovider -o addopts= -rfEs "
            f"'{__file__}'\n")
        env = {k: v for k, v in os.environ.items()
               if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR", "PYTEST_ADDOPTS")}
        env["KIEL_PLATFORMS_NETNS"] = str(tmp_path)
        r = subprocess.run(["unshare", "--net", "--mount", "--", "sh", "-c", script],
                           capture_output=True, text=True, env=env, timeout=840,
                           cwd=Path(__file__).parent.parent)
        report = r.stdout[-12000:] + r.stderr[-4000:]
        assert r.returncode == 0, report
        # the tests of the module ran inside and passed: none failed, skipped or deselected
        last = r.stdout.strip().splitlines()[-1]
        assert re.search(r"\b\d+ passed\b", last), report
        assert not re.search(r"failed|error|skipped|deselected|xfail", last), report


# --- inside: one HTTPS server for every platform host ------------------------------------------

class Platforms:
    """The platforms' answers on 127.0.0.1:443; ``overrides`` replace a route."""

    def __init__(self, run_dir: Path) -> None:
        self.routes = routes()
        self.overrides: dict[str, tuple[str, dict[str, Any]]] = {}
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(str(run_dir / "cert.pem"), str(run_dir / "key.pem"))
        self.site = Site(self.answer, port=443, tls=tls)

    def answer(self, host: str, path: str) -> Answer:
        got = self.overrides.get(host + path) or self.routes.get(host + path)
        if got is None:
            return 404, [("Content-Type", "text/plain")], b"no such route"
        platform, route = got
        body = (FIXTURES / platform / route["body"]).read_bytes() if "body" in route else b""
        headers = [("Content-Type", route["type"])]
        if route.get("location"):
            headers.append(("Location", route["location"]))
        return route["status"], headers, body

    def asked(self) -> list[str]:
        return [h + p for h, p in self.site.requests]


@pytest.fixture(scope="module")
def platforms() -> Iterator[Platforms]:
    assert INSIDE
    p = Platforms(Path(INSIDE))
    yield p
    p.site.close()


@pytest.fixture
def server(platforms: Platforms) -> Platforms:
    platforms.overrides.clear()
    platforms.site.requests.clear()
    return platforms


def deposit_home(tmp_path: Path, *urls: str, conf: str = "", display: str | None = None
                 ) -> Home:
    """A home whose one record links ``urls`` (and a display page); its input is
    tmp_path/in/a.xml."""
    root = make_home(tmp_path / "home", conf)
    write_amf(tmp_path / "in" / "a.xml", text(RID, *map(escape, urls),
                                              display=escape(display) if display else None))
    return Home(str(root))


def renewed(h: Home, tmp_path: Path) -> Path:
    """``kiel renew`` of the home's input; the record's directory."""
    r = renew(h.root, tmp_path / "in" / "a.xml", "--quiet")
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    return Path(h.store) / record_path(RID)


def manifest_lines(rdir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (rdir / "00notes").read_text().splitlines()
            if json.loads(line).get("event") == "manifest"]


if INSIDE:
    def test_the_namespace_is_private_and_trusts_the_run_ca() -> None:
        import socket

        import certifi

        assert socket.gethostbyname("zenodo.org") == "127.0.0.1"
        assert socket.gethostbyname("api.osf.io") == "127.0.0.1"
        ctx = ssl.create_default_context(cafile=certifi.where())
        assert any(c.get("subject") and ("commonName", "Kiel test CA") in
                   [t for rdn in c["subject"] for t in rdn] for c in ctx.get_ca_certs())

    def test_zenodo_fileset(server: Platforms, tmp_path: Path) -> None:
        rdir = renewed(deposit_home(tmp_path, "https://zenodo.org/records/1001"), tmp_path)
        [rec] = read_manifests(str(rdir))
        assert (rec.platform, rec.deposit_id, rec.version, rec.strategy, rec.file_count) == \
            ("zenodo", "1001", "1001", "fileset", 3)
        assert rec.api_urls == ("https://zenodo.org/api/records/1001",)
        assert [f.status for f in rec.files] == ["ok", "ok", "ok"]
        assert {f.algorithm for f in rec.files} == {"md5"} and not rec.mismatches
        assert rec.total_size == sum(f.size or 0 for f in rec.files)
        for f in rec.files:  # each file stored as an attempt of the record, byte-exact
            assert f.file and (rdir / f.file).read_bytes() == \
                (FIXTURES / "zenodo" / "files" / "1001" / f.path).read_bytes()

    def test_single_file_with_checksum_mismatch(server: Platforms, tmp_path: Path) -> None:
        rdir = renewed(deposit_home(tmp_path, "https://doi.org/10.5281/zenodo.1002"), tmp_path)
        [rec] = read_manifests(str(rdir))
        assert rec.strategy == "single"
        [f] = rec.files
        assert f.status == "mismatch" and f.algorithm == "md5"
        assert f.found["md5"] != f.declared["md5"]
        assert f.file and (rdir / f.file).read_bytes().startswith(b"%PDF")  # kept as fetched
        assert rec.mismatches[0].path == "paper.pdf"

    def test_new_version_through_the_concept_id(server: Platforms, tmp_path: Path) -> None:
        h = deposit_home(tmp_path, "https://doi.org/10.5281/zenodo.1000")
        rdir = renewed(h, tmp_path)
        [first] = read_manifests(str(rdir))
        assert first.version == "1001"  # the latest, recorded
        assert "https://zenodo.org/api/records/1000" in first.api_urls  # the redirect is kept
        server.site.requests.clear()
        renewed(h, tmp_path)
        again = read_manifests(str(rdir))[-1]
        assert again.unchanged and again.version == "1001"  # nothing fetched again
        assert all("/content" not in a for a in server.asked()), server.asked()
        server.overrides["zenodo.org/api/records/1000"] = (
            "zenodo", {"status": 302, "type": "application/json",
                       "location": "https://zenodo.org/api/records/1005"})
        renewed(h, tmp_path)
        second = read_manifests(str(rdir))[-1]
        assert second.version == "1005" and not second.unchanged
        old = {f.path: f for f in first.files}
        assert [f.path for f in second.files if f.declared != old[f.path].declared] == \
            ["data.csv"]
        assert {f.url for f in second.files}.isdisjoint({f.url for f in first.files})

    def test_bundle_over_max_file_count(server: Platforms, tmp_path: Path) -> None:
        rdir = renewed(deposit_home(tmp_path, "https://zenodo.org/records/1001",
                                    conf="max_file_count = 2\n"), tmp_path)
        [rec] = read_manifests(str(rdir))
        assert rec.strategy == "bundle"
        assert rec.bundle_url == "https://zenodo.org/api/records/1001/files-archive"
        assert rec.bundle_file and zipfile.is_zipfile(rdir / rec.bundle_file)
        # the bundle's interior, listed and checked file by file
        assert sorted(f.path for f in rec.files) == ["README.md", "code.do", "data.csv"]
        assert {f.status for f in rec.files} == {"ok"}

    def test_dataverse_versions_and_original_files(server: Platforms, tmp_path: Path) -> None:
        rdir = renewed(deposit_home(tmp_path, "https://doi.org/10.7910/DVN/KIEL01"), tmp_path)
        [latest] = read_manifests(str(rdir))
        assert latest.version == "2.0" and latest.strategy == "fileset"
        assert {f.status for f in latest.files} == {"ok"}
        tab = next(f for f in latest.files if f.path == "data/panel.dta")
        assert tab.url and tab.url.endswith("/api/access/datafile/11?format=original")
        v1 = tmp_path / "v1"
        rdir = renewed(deposit_home(v1, "https://dataverse.harvard.edu/dataset.xhtml?"
                                        "persistentId=doi:10.7910/DVN/KIEL01&version=1.0"), v1)
        [first] = read_manifests(str(rdir))
        assert first.version == "1.0" and first.strategy == "single"

    def test_landing_page_leads_to_a_deposit(server: Platforms, tmp_path: Path) -> None:
        rdir = renewed(deposit_home(tmp_path, display="https://journal.example.org/article/42"),
                       tmp_path)
        [rec] = read_manifests(str(rdir))
        assert (rec.platform, rec.deposit_id) == ("dataverse", "doi:10.7910/DVN/KIEL01")
        locked = tmp_path / "locked"
        rdir = renewed(deposit_home(locked, display="https://data.example.edu/landing/locked"),
                       locked)
        [rec] = read_manifests(str(rdir))
        assert rec.domain == "data.example.edu"  # any installation
        assert rec.failure == "platform-restricted"  # every file restricted

    def test_figshare_named_version(server: Platforms, tmp_path: Path) -> None:
        rdir = renewed(deposit_home(
            tmp_path, "https://figshare.com/articles/dataset/Replication_files/3001/2"), tmp_path)
        [rec] = read_manifests(str(rdir))
        assert (rec.version, rec.strategy, rec.file_count) == ("2", "fileset", 2)
        assert rec.api_urls == ("https://api.figshare.com/v2/articles/3001/versions/2",)
        assert {f.status for f in rec.files} == {"ok"}

    def test_dryad_pages(server: Platforms, tmp_path: Path) -> None:
        rdir = renewed(deposit_home(
            tmp_path, "https://datadryad.org/stash/dataset/doi:10.5061/dryad.kiel42"), tmp_path)
        [rec] = read_manifests(str(rdir))
        assert rec.version == "501" and rec.file_count == 3
        assert len(rec.api_urls) == 3  # the dataset and two pages of files
        assert {(f.status, f.algorithm) for f in rec.files} == {("ok", "sha256")}

    def test_osf_folders_and_pages(server: Platforms, tmp_path: Path) -> None:
        rdir = renewed(deposit_home(tmp_path, "https://osf.io/abcde/", "https://osf.io/zzzzz/"),
                       tmp_path)
        recs = {r.deposit_id: r for r in read_manifests(str(rdir))}
        ok = recs["abcde"]
        assert ok.version is None
        assert sorted(f.path for f in ok.files) == ["README.md", "analysis.R", "data/survey.csv"]
        assert {(f.status, f.algorithm) for f in ok.files} == {("ok", "sha256")}
        assert recs["zzzzz"].failure == "platform-restricted"

    def test_verify_show_report(server: Platforms, tmp_path: Path) -> None:
        h = deposit_home(tmp_path, "https://zenodo.org/records/1001",
                         "https://zenodo.org/records/1002", "https://zenodo.org/records/1004")
        rdir = renewed(h, tmp_path)
        r = kiel("verify", home=h.root)
        assert r.returncode == 0, r.stdout + r.stderr  # a mismatch is a warning
        warnings = [line for line in r.stdout.splitlines() if line.startswith("warning")]
        assert len(warnings) == 1 and "deposit-mismatch" in warnings[0], r.stdout
        assert f"{record_path(RID)}/00notes: zenodo 1002 paper.pdf: md5" in warnings[0]

        # a stored deposit file damaged after the fact: Kiel's own sha256 and the
        # platform's md5 both catch it
        data = next(f for rec in read_manifests(str(rdir)) for f in rec.files
                    if f.path == "data.csv")
        assert data.file is not None
        stored = rdir / data.file
        stored.write_bytes(stored.read_bytes().replace(b"2019", b"2018"))
        r = kiel("verify", "--fixity", home=h.root)
        assert r.returncode == 1, r.stdout + r.stderr
        kinds = sorted(m.group(1) for m in re.finditer(r"^(?:breach|warning) ([a-z-]+):",
                                                        r.stdout, re.M))
        assert kinds == ["deposit-fixity-failed", "deposit-mismatch", "fixity-failed"], r.stdout

        r = kiel("show", RID, home=h.root)
        assert r.returncode == 0, r.stderr
        assert "deposits 3" in r.stdout
        assert re.search(r"mismatch +paper\.pdf +\d+ B +md5 expected [0-9a-f]{32} found",
                         r.stdout), r.stdout
        assert "platform-404" in r.stdout
        r = kiel("report", home=h.root)
        assert r.returncode == 0, r.stderr
        assert "deposits          3  (4 files" in r.stdout, r.stdout

    def test_verify_fixity_of_a_bundle(server: Platforms, tmp_path: Path) -> None:
        h = deposit_home(tmp_path, "https://zenodo.org/records/1001", conf="max_file_count = 2\n")
        rdir = renewed(h, tmp_path)
        r = kiel("verify", "--fixity", home=h.root)
        assert r.returncode == 0, r.stdout
        assert re.search(r"^fixity: \d+ passed, 0 failed", r.stdout, re.M), r.stdout
        assert "0 breaches, 0 warnings" in r.stdout
        [rec] = read_manifests(str(rdir))
        assert rec.bundle_file
        stored = rdir / rec.bundle_file
        buf = io.BytesIO()
        with zipfile.ZipFile(stored) as old, zipfile.ZipFile(buf, "w") as new:
            for info in old.infolist():
                data = old.read(info)
                new.writestr(info, data.replace(b"2019", b"2018")
                             if info.filename == "data.csv" else data)
        stored.write_bytes(buf.getvalue())
        r = kiel("verify", "--fixity", home=h.root)
        assert r.returncode == 1, r.stdout
        assert re.search(r"^breach fixity-failed: .*: sha256 differs from the notes$", r.stdout,
                         re.M), r.stdout
        assert re.search(r"^breach deposit-fixity-failed: .*data\.csv: md5 differs", r.stdout,
                         re.M), r.stdout
        assert "2 breaches, 0 warnings" in r.stdout, r.stdout

    # (deposit URL, API requests of the first renewal, of an unchanged one)
    REQUESTS = [
        ("https://zenodo.org/records/1001", 1, 1),
        ("https://doi.org/10.5281/zenodo.2000", 3, 1),
        ("https://doi.org/10.7910/DVN/KIEL01", 1, 1),
        ("https://figshare.com/articles/3001/2", 1, 1),
        ("https://doi.org/10.5061/dryad.kiel42", 3, 1),
        ("https://osf.io/abcde/", 3, 3),
        ("https://archive.org/details/kiel-test-item", 1, 1),
    ]

    @pytest.mark.parametrize("url, first, again", REQUESTS)
    def test_requests_per_renewal(url: str, first: int, again: int, server: Platforms,
                                  tmp_path: Path) -> None:
        """The API requests the platforms receive for one deposit through two
        renewals: an unchanged deposit costs its API requests and nothing else."""
        h = deposit_home(tmp_path, url, conf="max_file_count = 10\n")
        rdir = renewed(h, tmp_path)
        [rec] = read_manifests(str(rdir))
        assert rec.failure is None, rec
        # besides the record's own URL (an object of the record like any other)
        # and the deposit's files, only API requests
        files = {f.url for f in rec.files} | {rec.bundle_url}
        asked = ["https://" + a for a in server.asked()]
        api = [a for a in asked if a != url and a not in files]
        assert len(api) == first, asked
        assert set(api) == set(rec.api_urls), (api, rec.api_urls)
        assert sorted(a for a in asked if a in files) == sorted(u for u in files if u), asked
        server.site.requests.clear()
        renewed(h, tmp_path)
        latest = read_manifests(str(rdir))[-1]
        assert latest.unchanged and latest.version == rec.version
        asked = ["https://" + a for a in server.asked()]
        assert not [a for a in asked if a in files], asked  # no file fetched again
        assert len([a for a in asked if a != url]) == again, asked

    def test_restricted_and_missing_deposits_are_named_failures(server: Platforms,
                                                                tmp_path: Path) -> None:
        rdir = renewed(deposit_home(
            tmp_path, "https://zenodo.org/records/1003",
            "https://figshare.com/articles/dataset/x/3002", "https://zenodo.org/records/1004",
            "https://figshare.com/articles/3009", "https://archive.org/details/no-such-item",
            "https://archive.org/details/a-dark-item"), tmp_path)
        got = {r.deposit_id: r for r in read_manifests(str(rdir))}
        assert {k: r.failure for k, r in got.items()} == {
            "1003": "platform-restricted", "3002": "platform-restricted",
            "1004": "platform-404", "3009": "platform-404", "no-such-item": "platform-404",
            "a-dark-item": "platform-restricted"}
        assert "2031-01-01" in (got["1003"].message or "")  # the embargo's end
        assert all(not r.files for r in got.values())

    def test_over_each_limit(server: Platforms, tmp_path: Path) -> None:
        rdir = renewed(deposit_home(tmp_path, "https://doi.org/10.5061/dryad.kiel42",
                                    conf="max_file_count = 2\n"), tmp_path)
        # Dryad's dataset here offers no download link: no bundle to fall back on
        assert [r.failure for r in read_manifests(str(rdir))] == ["too-many-files"]
        v2 = tmp_path / "v2"
        rdir = renewed(deposit_home(v2, "https://archive.org/details/kiel-test-item",
                                    conf="max_total_size = 10\n"), v2)
        assert [r.failure for r in read_manifests(str(rdir))] == ["too-large-size"]

    def test_archiveorg_originals_only(server: Platforms, tmp_path: Path) -> None:
        rdir = renewed(deposit_home(tmp_path, "https://archive.org/details/kiel-test-item"),
                       tmp_path)
        [rec] = read_manifests(str(rdir))
        assert sorted(f.path for f in rec.files) == ["data.csv", "paper.pdf"]
        assert all(f.declared.get("md5") and f.declared.get("sha1") for f in rec.files)
        assert {f.status for f in rec.files} == {"ok"}

    def test_changed_limits_fetch_the_deposit_again(server: Platforms, tmp_path: Path) -> None:
        h = deposit_home(tmp_path, "https://zenodo.org/records/1001")
        rdir = renewed(h, tmp_path)
        renewed(h, tmp_path)
        first, again = read_manifests(str(rdir))
        assert again.unchanged and not first.unchanged
        # an unchanged renewal's note carries the earlier outcomes and files
        assert [f.status for f in again.files] == ["ok"] * 3
        assert [f.file for f in again.files] == [f.file for f in first.files]
        # the limits changed the strategy: the deposit is fetched again, as a bundle
        with open(Path(h.conf), "a", encoding="utf-8") as conf:
            conf.write("max_file_count = 2\n")
        server.site.requests.clear()
        renewed(h, tmp_path)
        third = read_manifests(str(rdir))[-1]
        assert third.strategy == "bundle" and not third.unchanged
        assert "zenodo.org/api/records/1001/files-archive" in server.asked()

    def test_a_new_version_is_listed_again(server: Platforms, tmp_path: Path) -> None:
        """The shortcut of an unchanged deposit holds only for the version noted last time."""
        h = deposit_home(tmp_path, "https://doi.org/10.5281/zenodo.2000")
        rdir = renewed(h, tmp_path)
        [first] = read_manifests(str(rdir))
        assert first.version == "2001"
        assert first.api_urls[:2] == ("https://zenodo.org/api/records/2000",
                                      "https://zenodo.org/api/records/2000/versions/latest")
        server.overrides["zenodo.org/api/records/2000/versions/latest"] = (
            "zenodo", {"status": 302, "type": "application/json",
                       "location": "https://zenodo.org/api/records/1005"})
        server.site.requests.clear()
        renewed(h, tmp_path)
        second = read_manifests(str(rdir))[-1]
        assert second.version == "1005" and not second.unchanged
        # besides the record's own URL (an object like any other) and the new files
        api = [a for a in server.asked()
               if "/content" not in a and a != "doi.org/10.5281/zenodo.2000"]
        assert api == ["zenodo.org/api/records/2000/versions/latest",
                       "zenodo.org/api/records/1005"], server.asked()

    def test_the_lock_is_free_after_the_runs(server: Platforms, tmp_path: Path) -> None:
        h = deposit_home(tmp_path, "https://zenodo.org/records/1001")
        renewed(h, tmp_path)
        with Lock(h):
            pass
