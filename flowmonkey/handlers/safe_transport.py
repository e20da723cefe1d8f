"""Connections for the ``http`` handler that go only where the SSRF policy allows.

A guard that resolves a host name to check it, and then lets the HTTP client resolve
it again to connect, checks one answer and uses another: a DNS server that answers a
public address first and a private one second (DNS rebinding) walks straight past it.
So the check lives where the connection is opened. :class:`GuardedNetworkBackend` is
an httpcore network backend: httpcore calls its ``connect_tcp`` for every new
connection (first request, each redirect hop, each retry) with the URL's host. It
resolves that host once, refuses the connection unless *every* address it resolved to
is public, and opens the socket to one of those same checked addresses.

Only the socket's destination changes. httpcore still holds the original host, so TLS
sends it as SNI and verifies the certificate against it, and httpx sends it in the
``Host`` header; rewriting the URL to the address instead would break both.

:class:`GuardedTransport` is an ``httpx.AsyncHTTPTransport`` whose connection pool
uses that backend. It never uses proxies (``trust_env`` is off): a proxy resolves the
name itself, beyond any check made here.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable

import httpcore
import httpx

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""``(host, port) -> IP address strings``; injectable so tests need no DNS."""

SocketOption = (tuple[int, int, int] | tuple[int, int, bytes | bytearray]
                | tuple[int, int, None, int])

# Ranges refused whatever the running Python's ``ipaddress`` tables say: those tables
# changed between versions (192.0.0.0/24 and 64:ff9b:1::/48, for example, only became
# "private" in 3.12/3.13), and a guard must not loosen when the interpreter is older.
_BLOCKED_NETWORKS: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = tuple(
    ipaddress.ip_network(network) for network in (
        "0.0.0.0/8",           # "this network"; 0.0.0.0 reaches the local host
        "10.0.0.0/8",
        "100.64.0.0/10",       # carrier-grade NAT, shared address space
        "127.0.0.0/8",
        "169.254.0.0/16",      # link-local, including cloud metadata 169.254.169.254
        "172.16.0.0/12",
        "192.0.0.0/24",        # IETF protocol assignments
        "192.0.2.0/24",
        "192.88.99.0/24",      # deprecated 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",       # benchmarking
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",         # multicast
        "240.0.0.0/4",         # reserved, and 255.255.255.255 broadcast
        "::/128",
        "::1/128",
        "::/96",               # deprecated IPv4-compatible addresses (::a.b.c.d)
        "64:ff9b:1::/48",      # local-use NAT64
        "100::/64",            # discard-only
        "2001::/23",           # IETF protocol assignments, including Teredo
        "2001:db8::/32",
        "3fff::/20",           # documentation
        "5f00::/16",           # SRv6 SIDs
        "fc00::/7",            # unique local, including fd00:ec2::254 metadata
        "fe80::/10",           # link-local
        "fec0::/10",           # deprecated site-local
        "ff00::/8",            # multicast
    ))
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class AddressNotAllowed(Exception):
    """A connection's host is, or resolves to, a non-public address."""

    def __init__(self, host: str, refused: Iterable[str]) -> None:
        self.host = host
        self.refused = tuple(refused)
        shown = ", ".join(self.refused)
        super().__init__(
            f"host {host!r} is or resolves to a non-public address ({shown}: private, "
            f"loopback, link-local, multicast or reserved)")


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve ``host`` for a TCP connection, all address families."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def is_public_address(address: Address) -> bool:
    """False for private, loopback, link-local, CGNAT, multicast, reserved and
    unspecified addresses, including IPv4 addresses embedded in IPv6 (mapped, 6to4,
    NAT64, Teredo)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded: list[ipaddress.IPv4Address] = []
        if address.ipv4_mapped is not None:
            embedded.append(address.ipv4_mapped)
        if address.sixtofour is not None:
            embedded.append(address.sixtofour)
        if address.teredo is not None:
            embedded.extend(address.teredo)
        if address in _NAT64:
            embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if embedded and not all(is_public_address(inner) for inner in embedded):
            return False
        if embedded and address.teredo is None:
            # Mapped, 6to4 and NAT64 addresses reach the IPv4 address they embed, so its
            # check is the check (Python calls 64:ff9b::/96 "reserved"; it is not).
            # Teredo tunnels are refused below with the rest of 2001::/23.
            return True
    if any(address in network for network in _BLOCKED_NETWORKS
           if network.version == address.version):
        return False
    return address.is_global and not (
        address.is_private or address.is_loopback or address.is_link_local
        or address.is_multicast or address.is_reserved or address.is_unspecified
    )


def parse_address(text: str) -> Address | None:
    """The IP address ``text`` names (an IPv6 zone such as ``%eth0`` is ignored for
    the check), or None when it is a host name."""
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Resolve each connection's host once, check every address, connect to a checked one.

    ``allow_private`` skips the check (the operator's choice); names are still
    resolved through ``resolver`` so both modes connect the same way. ``inner`` opens
    the sockets (httpcore's anyio backend unless a test passes a stub).
    """

    def __init__(
        self,
        resolver: Resolver | None = None,
        *,
        allow_private: bool = False,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._resolve = resolver or system_resolver
        self._allow_private = allow_private
        self._inner = inner or httpcore.AnyIOBackend()

    async def checked_addresses(self, host: str, port: int) -> list[str]:
        """The addresses to connect to for ``host``, in resolver order, each one
        allowed; raises :class:`AddressNotAllowed` if any is not."""
        if parse_address(host) is not None:
            candidates = [host]
        else:
            try:
                resolved = await self._resolve(host, port)
            except OSError as exc:
                raise httpcore.ConnectError(f"could not resolve host {host!r}: {exc}") from None
            candidates = list(dict.fromkeys(resolved))
            if not candidates:
                raise httpcore.ConnectError(f"could not resolve host {host!r}")
        if self._allow_private:
            return candidates
        refused = []
        for candidate in candidates:
            address = parse_address(candidate)
            if address is None or not is_public_address(address):
                refused.append(candidate)
        if refused:
            # All or nothing: a name that resolves to a private address anywhere in its
            # answer is refused even if a public one came first, since which of them a
            # later connection (a retry, the next hop) would use is not ours to know.
            raise AddressNotAllowed(host, refused)
        return candidates

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        last_error: Exception | None = None
        for address in await self.checked_addresses(host, port):
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address,
                    socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc  # the next checked address may answer
        assert last_error is not None  # checked_addresses never returns an empty list
        raise last_error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        # A local socket is as private as it gets, and GuardedTransport never asks.
        raise AddressNotAllowed(path, [path])

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """An httpx transport whose every connection goes through :class:`GuardedNetworkBackend`.

    ``verify`` is as for httpx (an ``ssl.SSLContext`` is used as given, so callers can
    build one once and share it); certificates are verified against the URL's host.
    """

    def __init__(
        self,
        resolver: Resolver | None = None,
        *,
        allow_private: bool = False,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
        verify: ssl.SSLContext | str | bool = True,
        limits: httpx.Limits | None = None,
    ) -> None:
        ssl_context = (verify if isinstance(verify, ssl.SSLContext)
                       else httpx.create_ssl_context(verify=verify))
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        super().__init__(verify=ssl_context, trust_env=False, limits=limits)
        # httpx builds its httpcore pool without a way to pass a network backend, so the
        # pool is replaced by an equal one that has ours. If a future httpx stops keeping
        # the pool in ``_pool``, fail here rather than connect unguarded.
        if not isinstance(getattr(self, "_pool", None), httpcore.AsyncConnectionPool):
            raise RuntimeError("this httpx version keeps no AsyncHTTPTransport._pool; "
                               "the guarded transport cannot be built")
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedNetworkBackend(
                resolver, allow_private=allow_private, inner=network_backend),
        )
