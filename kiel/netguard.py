"""Where Kiel may connect, decided on the address actually dialled.

A check made before the request (resolve the name, look at the answer, then
let the HTTP library resolve it again) can be fooled: the library may encode
the name differently (IDNA 2003 against IDNA 2008), the DNS answer may change
in between, and ``0.0.0.0`` or ``::`` are in no list yet reach loopback on
Linux. So the decision is made here, at the moment of connecting: the name is
resolved once, every address it resolves to is judged by its properties
(loopback, private, link-local, unspecified, reserved, multicast, with
IPv4-mapped, NAT64 and 6to4 forms unwrapped), and the socket is connected to
the address that was judged, never to the name.

The same decision serves HTTP and HTTPS on the event loop (:func:`adial`,
the loop's ``getaddrinfo``, deadlines as cancellations: see
:mod:`kiel.fetch`) and FTP control and data connections, which block in a
thread (:func:`dial` with :class:`GuardedSocket`): there every blocking step
(name resolution, connect, each read and write) meets the attempt's
:class:`Budget`, its total deadline and a stop event, so a signal ends a
run within a fraction of a second whatever a server does.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import math
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Sequence[str]]

# While a stop event may be set, no blocking call waits longer than this
# between two looks at it.
POLL = 0.2

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix
_6TO4 = ipaddress.IPv6Network("2002::/16")  # RFC 3056

# The properties that deny an address unless allow_networks names it, in the
# order a reason is given.
_PROPERTIES = (
    ("is_unspecified", "unspecified"),  # Linux sends a connect to it to loopback
    ("is_loopback", "loopback"),
    ("is_link_local", "link-local"),
    ("is_multicast", "multicast"),
    ("is_private", "private"),
    ("is_reserved", "reserved"),
    ("is_site_local", "site-local"),
)


class Denied(Exception):
    """A connection refused by the policy; ``verdict`` names the address."""

    def __init__(self, verdict: Verdict):
        super().__init__(str(verdict))
        self.verdict = verdict


class Deadline(Exception):
    """The attempt's total deadline passed."""


class Cancelled(Exception):
    """The run was asked to stop (a signal) while the attempt waited."""


@dataclass(frozen=True)
class Verdict:
    """The decision on one address a host resolved to."""

    host: str  # the name as dialled (IDNA-encoded), or the literal
    address: str  # the address judged, as text
    allowed: bool
    reason: str  # why: "global", "allow_networks 127.0.0.0/8", "loopback", ...

    def __str__(self) -> str:
        verb = "allowed" if self.allowed else "denied"
        where = self.address if self.host == self.address else \
            f"{self.host} resolves to {self.address}"
        return f"{where}, {verb}: {self.reason}"



def judge_all(name: str, addresses: Sequence[str], policy: Policy | None) -> list[Verdict]:
    """The verdict on every address a name resolved to, before any is dialled:
    one denied address denies the host (:class:`Denied`)."""
    verdicts = []
    for a in addresses:
        v = policy.judge(a, name) if policy is not None else Verdict(name, a, True, "unchecked")
        if not v.allowed:
            raise Denied(v)
        verdicts.append(v)
    return verdicts

def unwrap(address: Address) -> Address:
    """The IPv4 address an IPv6 form carries (IPv4-mapped, NAT64, 6to4), else itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if address.sixtofour is not None:
            return address.sixtofour
    return address


def _parse(text: str) -> Address:
    # a scope (fe80::1%eth0) is part of where the socket goes, not of the judgement
    return ipaddress.ip_address(text.split("%", 1)[0])


@dataclass(frozen=True)
class Policy:
    """Which addresses Kiel connects to.

    An address is allowed when ``allow`` names it (or the IPv4 address it
    wraps); otherwise it is denied when ``deny`` names it or when one of its
    properties says it is not a public Internet address.
    """

    allow: tuple[Network, ...] = ()
    deny: tuple[Network, ...] = ()

    def judge(self, address: str, host: str | None = None) -> Verdict:
        host = address if host is None else host
        try:
            raw = _parse(address)
        except ValueError:
            return Verdict(host, address, False, "not an IP address")
        inner = unwrap(raw)
        text = f"::ffff:{inner}" if getattr(raw, "ipv4_mapped", None) else str(raw)
        forms = (raw,) if inner == raw else (raw, inner)
        for a in forms:
            for net in self.allow:
                if a.version == net.version and a in net:
                    return Verdict(host, text, True, f"allow_networks {net}")
        for a in forms:
            for net in self.deny:
                if a.version == net.version and a in net:
                    return Verdict(host, text, False, f"in denied network {net}")
        # The wrapper forms themselves are reserved or private ranges: judge
        # what they carry, so that a NAT64 network still reaches public hosts.
        what = "" if inner == raw else f" ({inner})"
        for prop, name in _PROPERTIES:
            if getattr(inner, prop, False):
                return Verdict(host, text, False, name + what)
        if not inner.is_global:
            return Verdict(host, text, False, "not globally reachable" + what)
        return Verdict(host, text, True, "global")


# --- the attempt's budget ------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    """What an attempt may still spend: a deadline (``time.monotonic()``), a stop event."""

    deadline: float = math.inf
    stop: threading.Event | None = None

    def check(self) -> float:
        """Seconds left; raise when the attempt must end now."""
        if self.stop is not None and self.stop.is_set():
            raise Cancelled("the run is stopping")
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise Deadline("total_timeout reached")
        return left


_local = threading.local()
_UNBOUNDED = Budget()


def current() -> Budget:
    """The budget of the attempt this thread is making (unbounded outside one)."""
    b = getattr(_local, "budget", None)
    return b if b is not None else _UNBOUNDED


@contextmanager
def attempt(budget: Budget) -> Iterator[Budget]:
    """Every connection, resolution, read and write in this thread meets ``budget``."""
    old = getattr(_local, "budget", None)
    _local.budget = budget
    try:
        yield budget
    finally:
        _local.budget = old


T = TypeVar("T")


def bounded(sock: socket.socket, op: Callable[[], T], timeout: float | None) -> T:
    """Run one blocking socket call within ``timeout`` and the current budget.

    ``op`` must be safe to repeat after a ``TimeoutError`` (recv, send,
    a TLS handshake step: each either did its work or did nothing). With a
    stop event the wait is cut into slices so that the event is seen.
    """
    budget = current()
    start = time.monotonic()
    while True:
        wait = math.inf if timeout is None else timeout - (time.monotonic() - start)
        if wait <= 0:
            raise TimeoutError("timed out")
        wait = min(wait, budget.check())
        if budget.stop is not None:
            wait = min(wait, POLL)
        sock.settimeout(None if wait == math.inf else wait)
        try:
            return op()
        except TimeoutError:
            continue  # the loop decides: read timeout, deadline, stop, or wait on


# --- resolving and dialling ----------------------------------------------------------


def encode_host(host: str) -> str:
    """The host as httpx puts it on the wire: httpx's own ``raw_host``.

    IP literals as they are (brackets dropped, a scope kept), names lower-cased,
    non-ASCII names by IDNA 2008, so that ``kielß.test`` is ``xn--kiel-yna.test``
    here as in the request, never the IDNA 2003 ``kielss.test`` that Python's
    own codec would make of it. The name judged is the name httpx encodes,
    by httpx's public API rather than a copy of its code.
    """
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal (ftplib names a data address so)
    try:
        return httpx.URL(scheme="http", host=host).raw_host.decode("ascii")
    except httpx.InvalidURL as e:
        raise ValueError(f"invalid host name {host!r}: {e}") from e


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to, in the order a connect would try them."""
    out: list[str] = []
    for *_, sockaddr in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM):
        a = str(sockaddr[0])
        if a not in out:
            out.append(a)
    return out


def _is_literal(host: str) -> bool:
    try:
        _parse(host)
        return True
    except ValueError:
        return False


def resolve(host: str, port: int, timeout: float | None,
            resolver: Resolver = system_resolver) -> list[str]:
    """Resolve once, within ``timeout`` and the current budget.

    ``getaddrinfo`` cannot be interrupted, so a name is resolved in a
    helper thread that this one stops waiting for. A name that does not
    resolve raises ``socket.gaierror``: it is an error, never let through.
    """
    if _is_literal(host):
        return [host]
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["addresses"] = list(resolver(host, port))
        except BaseException as e:  # noqa: BLE001 - handed to the waiting thread
            box["error"] = e

    t = threading.Thread(target=work, name="kiel-resolve", daemon=True)
    t.start()
    start = time.monotonic()
    budget = current()
    while t.is_alive():
        wait = budget.check()
        if timeout is not None:
            left = timeout - (time.monotonic() - start)
            if left <= 0:
                raise socket.gaierror(socket.EAI_AGAIN, f"resolving {host} timed out")
            wait = min(wait, left)
        t.join(min(wait, POLL))
    if "error" in box:
        raise box["error"]
    addresses: list[str] = box["addresses"]
    if not addresses:
        raise socket.gaierror(socket.EAI_NONAME, f"{host} resolves to no address")
    return addresses


def _connect(sock: socket.socket, sockaddr: tuple[Any, ...], timeout: float | None) -> None:
    """A non-blocking connect, waited for in slices (a connect cannot be repeated)."""
    sock.setblocking(False)
    err = sock.connect_ex(sockaddr)
    if err not in (0, errno.EINPROGRESS):
        raise OSError(err, f"connect to {sockaddr[0]}: {os.strerror(err)}")
    if err == 0:
        return
    budget = current()
    start = time.monotonic()
    poller = select.poll()
    poller.register(sock, select.POLLOUT)
    while True:
        wait = budget.check()
        if timeout is not None:
            left = timeout - (time.monotonic() - start)
            if left <= 0:
                raise TimeoutError(f"connect to {sockaddr[0]} timed out")
            wait = min(wait, left)
        if budget.stop is not None:
            wait = min(wait, POLL)
        if poller.poll(None if wait == math.inf else max(1, int(wait * 1000))):
            break
    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err:
        raise OSError(err, f"connect to {sockaddr[0]}: {os.strerror(err)}")


S = TypeVar("S", bound=socket.socket)


def dial(host: str, port: int, policy: Policy | None, timeout: float | None, *,
         resolver: Resolver = system_resolver, local_address: str | None = None,
         sock_class: type[S] = socket.socket,  # type: ignore[assignment]
         ) -> tuple[S, Verdict]:
    """A TCP connection to ``host``, decided on and made to the checked address.

    Every address the name resolves to is judged first; one denied address
    denies the host (:class:`Denied`), as a hostile DNS answer may mix a
    public address with a private one. Then the addresses are tried in order,
    each by its literal, so nothing is resolved a second time.
    """
    name = encode_host(host)
    addresses = resolve(name, port, timeout, resolver)
    verdicts = judge_all(name, addresses, policy)
    last: BaseException | None = None
    for a, v in zip(addresses, verdicts, strict=True):
        current().check()
        infos = socket.getaddrinfo(a, port, 0, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)
        family, type_, proto, _, sockaddr = infos[0]
        sock = sock_class(family, type_, proto)
        try:
            if local_address is not None:
                sock.bind((local_address, 0))
            _connect(sock, sockaddr, timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(True)
            return sock, v
        except BaseException as e:
            sock.close()
            if not isinstance(e, OSError):
                raise  # Deadline, Cancelled: no other address is tried
            last = e
    assert last is not None
    raise last


class GuardedSocket(socket.socket):
    """A socket whose every read and write meets ``io_timeout`` and the current budget.

    ftplib reads its replies through ``makefile``, which calls ``recv_into``
    line after line: a server sending ``220-`` lines forever meets the
    deadline here, at each read.
    """

    io_timeout: float | None = None

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        return bounded(self, lambda: super(GuardedSocket, self).recv(bufsize, flags),
                       self.io_timeout)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        return bounded(self, lambda: super(GuardedSocket, self).recv_into(buffer, nbytes, flags),
                       self.io_timeout)

    def send(self, data: Any, flags: int = 0) -> int:
        return bounded(self, lambda: super(GuardedSocket, self).send(data, flags),
                       self.io_timeout)

    def sendall(self, data: Any, flags: int = 0) -> None:
        view = memoryview(data)
        while view:
            n = self.send(view, flags)
            view = view[n:]


# --- HTTP: dialling on the event loop -------------------------------------------------


async def aresolve(host: str, port: int, resolver: Resolver = system_resolver) -> list[str]:
    """Resolve once, on the event loop: the loop's ``getaddrinfo`` for the
    system resolver, another resolver in a daemon thread (a resolver that
    never answers holds no executor). The attempt's deadline is the caller's
    (a cancellation). A name that does not resolve raises ``socket.gaierror``."""
    if _is_literal(host):
        return [host]
    loop = asyncio.get_running_loop()
    out: list[str] = []
    if resolver is system_resolver:
        for *_, sockaddr in await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM):
            a = str(sockaddr[0])
            if a not in out:
                out.append(a)
    else:
        fut: asyncio.Future[list[str]] = loop.create_future()

        def settle(addresses: list[str] | None, error: BaseException | None) -> None:
            if fut.done():
                return
            if error is not None:
                fut.set_exception(error)
            else:
                fut.set_result(addresses or [])

        def work() -> None:
            try:
                got, err = list(resolver(host, port)), None
            except BaseException as e:  # noqa: BLE001 - handed to the loop
                got, err = None, e
            try:
                loop.call_soon_threadsafe(settle, got, err)
            except RuntimeError:
                pass  # the loop is closed: nobody waits any more

        threading.Thread(target=work, name="kiel-resolve", daemon=True).start()
        out = await fut
    if not out:
        raise socket.gaierror(socket.EAI_NONAME, f"{host} resolves to no address")
    return out


async def adial(host: str, port: int, policy: Policy | None,
                resolver: Resolver = system_resolver) -> tuple[socket.socket, Verdict]:
    """:func:`dial` on the event loop: every address the name resolves to is
    judged (one denied address denies the host), then the judged literals are
    connected in order, never the name. A non-blocking socket is returned."""
    name = encode_host(host)
    addresses = await aresolve(name, port, resolver)
    verdicts = judge_all(name, addresses, policy)
    loop = asyncio.get_running_loop()
    last: BaseException | None = None
    for a, v in zip(addresses, verdicts, strict=True):
        infos = socket.getaddrinfo(a, port, 0, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)
        family, type_, proto, _, sockaddr = infos[0]
        sock = socket.socket(family, type_, proto)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, sockaddr)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock, v
        except OSError as e:
            sock.close()
            last = e
        except BaseException:
            sock.close()
            raise  # a deadline or a stop: no other address is tried
    assert last is not None
    raise last
