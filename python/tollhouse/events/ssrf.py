"""SSRF guard for outbound deliveries.

A webhook URL is user-supplied, so a delivery must not reach the gateway's own network:
loopback, RFC 1918, CGNAT, link-local (incl. the 169.254.169.254 metadata service),
IPv6 ULA/link-local, unspecified, multicast and reserved ranges are refused unless the
host or network is listed in ``webhooks.allow_private``.

The check runs at send time on the address actually connected to: IP-literal URLs are
checked before the request (aiohttp does not consult a resolver for them) and host names
go through ``GuardedResolver`` (``tollhouse.events.resolver``), so a name that resolves to
a public address when the target is saved and to 127.0.0.1 later (DNS rebinding) is still refused.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from tollhouse.errors import ConfigError, DestinationBlocked

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# ``is_global`` already excludes most of these; they are listed so the intent is explicit
# and does not depend on the Python version's registry tables.
_BLOCKED_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+")


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_internal(ip: IPAddress) -> bool:
    """True for any address a delivery must not reach without an explicit allow entry."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return True
        v4 = _embedded_v4(ip)
        if v4 is not None and is_internal(v4):
            return True
    if any(ip.version == net.version and ip in net for net in _BLOCKED_NETWORKS):
        return True
    return not ip.is_global


def _parse_ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0] if "%" in text else text)
    except ValueError:
        return None


class SSRFGuard:
    """Decides whether a (host, address) pair may be connected to."""

    def __init__(self, allow_private: Iterable[str] = ()) -> None:
        nets: list[IPNetwork] = []
        hosts: set[str] = set()
        for i, entry in enumerate(allow_private):
            where = f"webhooks.allow_private[{i}]"
            if not isinstance(entry, str) or not entry.strip():
                raise ConfigError(f"{where}: expected a CIDR, an IP address or a host name")
            text = entry.strip().lower()
            try:
                nets.append(ipaddress.ip_network(text, strict=False))
                continue
            except ValueError:
                pass
            if "/" in text or not all(c.isalnum() or c in ".-_" for c in text):
                raise ConfigError(f"{where}: {entry!r} is neither a CIDR nor a host name")
            hosts.add(text.rstrip("."))
        self.allowed_networks: tuple[IPNetwork, ...] = tuple(nets)
        self.allowed_hosts: frozenset[str] = frozenset(hosts)

    def host_allowed(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.allowed_hosts

    def address_allowed(self, host: str, address: str) -> bool:
        """May ``address`` (which ``host`` resolved to) be connected to?"""
        ip = _parse_ip(address)
        if ip is None:
            return False
        if not is_internal(ip):
            return True
        if self.host_allowed(host):
            return True
        return any(ip.version == net.version and ip in net for net in self.allowed_networks)

    def check_url(self, url: str) -> None:
        """Refuse before any connection: bad scheme, credentials-free checks on IP literals
        and non-canonical numeric hosts (``2130706433``, ``0x7f.1``).  Host names are
        checked again on their resolved addresses by ``GuardedResolver``."""
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError:
            raise DestinationBlocked("delivery URL is malformed") from None
        if parts.scheme not in ("http", "https") or not host:
            raise DestinationBlocked("delivery URL must be http(s) with a host")
        self.check_host(host)

    def check_host(self, host: str) -> None:
        """The host part of ``check_url`` (an SMTP server is a host, not a URL): an IP
        literal must be allowed; a numeric last label (an inet_aton form) is refused."""
        ip = _parse_ip(host)
        if ip is not None:
            if not self.address_allowed(host, host):
                raise DestinationBlocked(
                    f"delivery to internal address {host} refused "
                    "(add it to webhooks.allow_private to permit)"
                )
            return
        # A real TLD is never numeric; a numeric last label means an inet_aton form.
        if _NUMERIC_LABEL.fullmatch(host.rstrip(".").rsplit(".", 1)[-1].lower()):
            raise DestinationBlocked(f"delivery host {host!r} is a non-canonical numeric address")

    def check_resolved(self, host: str, addresses: Iterable[str]) -> None:
        """Refuse ``host`` if ANY address it resolved to is internal (all-or-nothing: a
        client may try every address in turn)."""
        for address in addresses:
            if not self.address_allowed(host, address):
                raise DestinationBlocked(
                    f"delivery host {host!r} resolves to internal address {address} "
                    "(add it to webhooks.allow_private to permit)"
                )
