"""The client's address: the peer, or X-Forwarded-For behind trusted proxies only."""

from __future__ import annotations

import pytest

from flowmonkey.forms.addresses import client_address, parse_networks

PROXIES = parse_networks(["10.0.0.0/8", "fd00::/8"])


def test_without_trusted_proxies_the_header_is_ignored() -> None:
    assert client_address("203.0.113.5", ["1.2.3.4"], ()) == "203.0.113.5"


def test_a_request_from_an_untrusted_peer_keeps_the_peer() -> None:
    assert client_address("203.0.113.5", ["1.2.3.4"], PROXIES) == "203.0.113.5"


def test_behind_a_trusted_proxy_the_rightmost_untrusted_hop_is_the_client() -> None:
    # the client forged the first entry; the proxies appended the rest
    assert client_address("10.0.0.2", ["6.6.6.6, 198.51.100.7, 10.0.0.9"], PROXIES) \
        == "198.51.100.7"
    assert client_address("10.0.0.2", ["6.6.6.6", "198.51.100.7"], PROXIES) == "198.51.100.7"
    assert client_address("fd00::1", ["2001:db8::5"], PROXIES) == "2001:db8::5"


def test_an_unreadable_hop_stops_the_walk() -> None:
    assert client_address("10.0.0.2", ["6.6.6.6, garbage, 10.0.0.3"], PROXIES) == "10.0.0.3"
    assert client_address("10.0.0.2", [], PROXIES) == "10.0.0.2"


def test_ports_and_mapped_addresses_are_read() -> None:
    assert client_address("10.0.0.2", ["198.51.100.7:5555"], PROXIES) == "198.51.100.7"
    assert client_address("10.0.0.2", ["[2001:db8::5]:443"], PROXIES) == "2001:db8::5"
    assert client_address("::ffff:10.0.0.2", ["198.51.100.7"], PROXIES) == "198.51.100.7"
    assert client_address(None, ["198.51.100.7"], PROXIES) == "unknown"


def test_bad_networks_are_named() -> None:
    with pytest.raises(ValueError, match="not an IP address or CIDR"):
        parse_networks(["10.0.0.0/33"])
