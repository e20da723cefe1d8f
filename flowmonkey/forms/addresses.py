"""The client address of a request: the connection's peer, or, when the peer is a
trusted proxy (``FLOWMONKEY_TRUSTED_PROXIES``, CIDRs), the address that proxy put in
``X-Forwarded-For``.

The header is read from the right: each hop appends the address it received the
request from, so the rightmost entries were written by the trusted proxies and the
first one that is not a trusted proxy is the client. Anything a client wrote itself
sits to the left of that and is never believed. A header that cannot be read leaves
the peer as the address. Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

#: hops read from X-Forwarded-For at most
MAX_HOPS = 20


def parse_networks(items: Iterable[str]) -> tuple[Network, ...]:
    """CIDRs (a bare address is a /32 or /128); ValueError names a bad one."""
    networks = []
    for item in items:
        text = item.strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"{text[:60]!r} is not an IP address or CIDR "
                             "(e.g. 10.0.0.0/8)") from None
    return tuple(networks)


def _address(text: str) -> Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: Address, proxies: Sequence[Network]) -> bool:
    return any(address.version == net.version and address in net for net in proxies)


def client_address(peer: str | None, forwarded_for: Sequence[str],
                   proxies: Sequence[Network]) -> str:
    """The client's address (``"unknown"`` without a peer). ``forwarded_for``: every
    ``X-Forwarded-For`` header's value, in order."""
    if not peer:
        return "unknown"
    address = _address(peer)
    if address is None or not proxies or not _trusted(address, proxies):
        return str(address) if address is not None else peer[:100]
    hops = [h for value in forwarded_for for h in value.split(",")][-MAX_HOPS:]
    for hop in reversed(hops):
        found = _address(hop)
        if found is None:
            break  # an unreadable entry: nothing to its left can be believed
        if not _trusted(found, proxies):
            return str(found)
        address = found
    return str(address)
