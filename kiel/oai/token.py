"""Resumption tokens that carry their own position.

A token is ``<payload>.<mac>``: the payload is base64url of a compact JSON
array (verb, metadataPrefix, set, from, until, last datestamp, last id),
the mac the first 16 bytes of HMAC-SHA256 over the payload with a key kept
in ``HOME/var/oai/key``. The server keeps no state, so a token survives a
restart and an index rebuild (it names a position in the (datestamp, id)
order, not an offset: keyset paging), and one changed character makes it
``badResumptionToken``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from dataclasses import dataclass

from kiel.oai.index import KEY_FILE, oai_dir

_MAC_BYTES = 16


class BadToken(ValueError):
    pass


@dataclass(frozen=True)
class ListPosition:
    verb: str  # "ListRecords" or "ListIdentifiers"
    prefix: str
    set: str | None
    from_: int | None
    until: int | None
    after: tuple[int, bytes]  # (datestamp, id) of the last item sent


@dataclass(frozen=True)
class SetsPosition:
    after: str  # the last setSpec sent


def load_key(home_root: str) -> bytes:
    """The home's token key, created (random, mode 0600) on first use."""
    top = oai_dir(home_root)
    path = os.path.join(top, KEY_FILE)
    try:
        with open(path, "rb") as f:
            return bytes.fromhex(f.read().decode("ascii").strip())
    except FileNotFoundError:
        pass
    os.makedirs(top, exist_ok=True)
    key = os.urandom(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another process made it first: use theirs, so tokens agree.
        with open(path, "rb") as f:
            return bytes.fromhex(f.read().decode("ascii").strip())
    with os.fdopen(fd, "w") as f:
        f.write(key.hex() + "\n")
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Tokens:
    def __init__(self, key: bytes):
        self._key = key

    def _mac(self, payload: str) -> str:
        mac = hmac.new(self._key, payload.encode("ascii"), hashlib.sha256)
        return _b64(mac.digest()[:_MAC_BYTES])

    def _seal(self, value: list[object]) -> str:
        payload = _b64(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
        return payload + "." + self._mac(payload)

    def _open(self, token: str) -> list[object]:
        payload, dot, mac = token.partition(".")
        if not dot or not payload or not mac:
            raise BadToken("not a token of this repository")
        try:
            payload.encode("ascii")
            good = hmac.compare_digest(self._mac(payload), mac)
        except (UnicodeEncodeError, TypeError):
            good = False
        if not good:
            raise BadToken("the token was altered or belongs to another repository")
        try:
            value = json.loads(_unb64(payload))
        except (ValueError, binascii.Error):
            raise BadToken("the token cannot be read") from None
        if not isinstance(value, list) or not value:
            raise BadToken("the token cannot be read")
        return value

    def list_token(self, pos: ListPosition) -> str:
        code = "R" if pos.verb == "ListRecords" else "I"
        return self._seal([code, pos.prefix, pos.set, pos.from_, pos.until,
                           pos.after[0], pos.after[1].decode("utf-8", "surrogateescape")])

    def read_list(self, token: str, verb: str) -> ListPosition:
        value = self._open(token)
        code = "R" if verb == "ListRecords" else "I"
        try:
            c, prefix, set_spec, from_, until, ds, rid = value
        except ValueError:
            raise BadToken("the token cannot be read") from None
        if c != code:
            raise BadToken(f"the token is not one of {verb}")
        if not (isinstance(prefix, str) and isinstance(ds, int) and isinstance(rid, str)
                and (set_spec is None or isinstance(set_spec, str))
                and (from_ is None or isinstance(from_, int))
                and (until is None or isinstance(until, int))):
            raise BadToken("the token cannot be read")
        return ListPosition(verb, prefix, set_spec, from_, until,
                            (ds, rid.encode("utf-8", "surrogateescape")))

    def sets_token(self, pos: SetsPosition) -> str:
        return self._seal(["S", pos.after])

    def read_sets(self, token: str) -> SetsPosition:
        value = self._open(token)
        if len(value) != 2 or value[0] != "S" or not isinstance(value[1], str):
            raise BadToken("the token is not one of ListSets")
        return SetsPosition(value[1])
