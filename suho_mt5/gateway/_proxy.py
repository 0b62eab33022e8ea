"""The PROXY protocol (HAProxy's ``send-proxy`` v1 and ``send-proxy-v2``): the client's own
address, sent by a load balancer ahead of the client's bytes.

Behind HAProxy in TCP mode every connection comes from the proxy's address; the gateway's
limits per source address (failed logins, unauthenticated sockets) would then count every EA
together, and a few failing clients would lock out all of them. With
``GatewayConfig.proxy_protocol_from`` set, a connection *from one of those addresses* must
start with a PROXY header, and the address in it is the peer from then on. Connections from
anywhere else are taken as direct clients and never parsed for a header (a client cannot
claim an address by sending one).

The format: https://www.haproxy.org/download/2.6/doc/proxy-protocol.txt (sections 2.1, 2.2).
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from suho_mt5.errors import GatewayError

__all__ = ["MAX_HEADER", "ProxyHeaderError", "TrustedProxies", "parse_proxy_header"]

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
_V2_FIXED = struct.Struct("!12sBBH")
#: A v1 header is one line of at most 107 bytes; a v2 header's TLVs are bounded by us.
MAX_HEADER = 16 + 536


class ProxyHeaderError(GatewayError):
    """A connection from a trusted proxy did not start with a valid PROXY header."""


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """What the header said: the client's address (``None``: a ``LOCAL`` connection, such as
    the proxy's own health check, or ``UNKNOWN``), and its length in bytes."""

    address: str | None
    length: int


def parse_proxy_header(data: bytes) -> ProxyHeader | None:
    """Parse a PROXY v1 or v2 header at the start of ``data``; ``None`` when more bytes are
    needed. Raises :class:`ProxyHeaderError` when ``data`` cannot start one.

    >>> parse_proxy_header(b"PROXY TCP4 203.0.113.7 10.0.0.1 40000 8001\\r\\nSUHO")
    ProxyHeader(address='203.0.113.7', length=44)
    >>> parse_proxy_header(b"PROXY TCP4 203.0") is None
    True
    """
    if data[:1] == b"\r":
        return _parse_v2(data)
    if data[:1] == b"P":
        return _parse_v1(data)
    if not data:
        return None
    raise ProxyHeaderError("a connection from a trusted proxy sent no PROXY header")


def _parse_v1(data: bytes) -> ProxyHeader | None:
    end = data.find(b"\r\n", 0, 108)
    if end < 0:
        if len(data) >= 107 or data[:6] != b"PROXY "[:len(data)]:
            raise ProxyHeaderError("a PROXY v1 header longer than 107 bytes, or no header")
        return None
    parts = data[:end].split(b" ")
    if parts[0] != b"PROXY" or len(parts) < 2:
        raise ProxyHeaderError("not a PROXY v1 header")
    if parts[1] == b"UNKNOWN":
        return ProxyHeader(None, end + 2)
    if parts[1] not in (b"TCP4", b"TCP6") or len(parts) != 6:
        raise ProxyHeaderError("a PROXY v1 header of an unknown family")
    try:
        address = ipaddress.ip_address(parts[2].decode("ascii"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProxyHeaderError("a PROXY v1 header with a bad source address") from exc
    return ProxyHeader(str(address), end + 2)


def _parse_v2(data: bytes) -> ProxyHeader | None:
    if len(data) < 16:
        if not V2_SIGNATURE.startswith(data[:12]):
            raise ProxyHeaderError("not a PROXY v2 header")
        return None
    signature, ver_cmd, family, length = _V2_FIXED.unpack_from(data)
    if signature != V2_SIGNATURE or ver_cmd >> 4 != 2:
        raise ProxyHeaderError("not a PROXY v2 header")
    if 16 + length > MAX_HEADER:
        raise ProxyHeaderError(f"a PROXY v2 header of {length} bytes")
    if len(data) < 16 + length:
        return None
    total = 16 + length
    command = ver_cmd & 0x0F
    if command == 0:  # LOCAL: the proxy speaking for itself (health checks)
        return ProxyHeader(None, total)
    if command != 1:
        raise ProxyHeaderError("a PROXY v2 header with an unknown command")
    body = data[16:total]
    if family >> 4 == 1 and length >= 12:  # AF_INET
        return ProxyHeader(socket.inet_ntop(socket.AF_INET, body[:4]), total)
    if family >> 4 == 2 and length >= 36:  # AF_INET6
        return ProxyHeader(socket.inet_ntop(socket.AF_INET6, body[:16]), total)
    return ProxyHeader(None, total)  # AF_UNSPEC / AF_UNIX: no address to use


class TrustedProxies:
    """The addresses (or networks) whose connections carry a PROXY header.

    >>> trusted = TrustedProxies(["127.0.0.1", "10.0.0.0/8"])
    >>> trusted.trusts("10.1.2.3"), trusted.trusts("192.0.2.1"), bool(TrustedProxies([]))
    (True, False, False)
    """

    def __init__(self, networks: Iterable[str]) -> None:
        try:
            self.networks = tuple(ipaddress.ip_network(n, strict=False) for n in networks)
        except ValueError as exc:
            raise GatewayError(f"bad PROXY protocol source: {exc}") from exc

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.networks)
