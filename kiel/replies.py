"""What an attempt's status means, by the scheme of its URL.

An attempt's status is HTTP's three digits for ``http``/``https`` and the
FTP reply code for ``ftp`` (docs/contract.md, Objects). The same first digit
means different things in the two protocols: FTP's 226 is a file that
arrived complete (HTTP's 200), its 5yz a permanent refusal such as 550, no
such file (HTTP's 4xx), its 4yz a transient failure of the server such as
421 or 451 (HTTP's 5xx). Counts and charts use HTTP's classes, so an FTP
reply is counted with the HTTP class of the same meaning (RFC 959, 4.2).
"""

from __future__ import annotations

# FTP's first digit -> the HTTP class of the same meaning. 1yz and 3yz are
# never the end of a transfer (ftplib takes them as a protocol error: 000);
# should one be noted, it is counted as the failure it is.
_FTP_CLASS = {"1": "5xx", "2": "2xx", "3": "5xx", "4": "5xx", "5": "4xx"}


def is_ftp(url: str | None) -> bool:
    """Whether ``url``'s scheme is FTP: its first six characters, in any case
    (a reader asks this of every attempt; urlsplit would fill its cache)."""
    return url is not None and url[:6].lower() == "ftp://"


def status_class(url: str | None, status: str) -> str:
    """``000``, ``2xx``, ``3xx``, ``4xx``, ``5xx``: the class a report counts
    ``status`` in, read by the scheme of ``url`` (HTTP's when unknown)."""
    if not status or status.startswith("0"):
        return "000"
    if is_ftp(url):
        return _FTP_CLASS.get(status[0], "000")
    return status[0] + "xx"


def answered(url: str | None, status: str) -> bool:
    """The URL lives: HTTP 2xx or 3xx (a redirect or 304 answers too), FTP 2yz."""
    return status_class(url, status) in ("2xx", "3xx")


def complete_body(url: str | None, status: str) -> bool:
    """The attempt's body is the whole resource: HTTP 200, FTP 226 or 250."""
    if is_ftp(url):
        return status in ("226", "250")
    return status == "200"
