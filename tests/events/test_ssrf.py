import ipaddress
import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from tollhouse.errors import ConfigError, DestinationBlocked
from tollhouse.events.resolver import GuardedResolver
from tollhouse.events.ssrf import SSRFGuard, is_internal

INTERNAL = [
    "127.0.0.1",
    "127.9.9.9",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "100.64.0.1",
    "169.254.169.254",
    "0.0.0.0",
    "::1",
    "::",
    "fd00::1",
    "fe80::1",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "64:ff9b::a00:1",
    "2002:a00:1::",
    "224.0.0.1",
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "93.184.216.34"]


@pytest.mark.parametrize("addr", INTERNAL)
def test_internal_addresses(addr: str) -> None:
    assert is_internal(ipaddress.ip_address(addr))


@pytest.mark.parametrize("addr", PUBLIC)
def test_public_addresses(addr: str) -> None:
    assert not is_internal(ipaddress.ip_address(addr))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://10.0.0.5/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:9/hook",
        "http://[fe80::1]/",
        "http://2130706433/",
        "http://0x7f.1/",
        "ftp://example.com/",
        "http:///nohost",
    ],
)
def test_check_url_refuses_before_connecting(url: str) -> None:
    with pytest.raises(DestinationBlocked):
        SSRFGuard().check_url(url)


def test_allow_list_by_cidr_and_host() -> None:
    guard = SSRFGuard(["127.0.0.0/8", "hooks.internal", "fd00::/8"])
    guard.check_url("http://127.0.0.1:9/hook")
    guard.check_url("http://[fd00::5]/hook")
    with pytest.raises(DestinationBlocked):
        guard.check_url("http://10.0.0.1/hook")
    assert guard.address_allowed("hooks.internal", "10.9.9.9")
    assert not guard.address_allowed("other.internal", "10.9.9.9")
    assert guard.address_allowed("anything", "8.8.8.8")


@pytest.mark.parametrize("entry", ["not a host!", "10.0.0.0/33", "", "a/b"])
def test_bad_allow_entries_are_config_errors(entry: str) -> None:
    with pytest.raises(ConfigError, match=r"allow_private\[0\]"):
        SSRFGuard([entry])


async def test_resolver_refuses_a_name_resolving_to_loopback() -> None:
    resolver = GuardedResolver(SSRFGuard())
    try:
        with pytest.raises(DestinationBlocked, match="localhost"):
            await resolver.resolve("localhost", 80)
    finally:
        await resolver.close()
    allowed = GuardedResolver(SSRFGuard(["localhost"]))
    try:
        hosts = await allowed.resolve("localhost", 80)
        assert hosts and all(is_internal(ipaddress.ip_address(h["host"])) for h in hosts)
    finally:
        await allowed.close()


class _ScriptedDNS(AbstractResolver):
    """Answers each lookup with the next scripted address list (a rebinding DNS server)."""

    def __init__(self, *answers: list[str]) -> None:
        self._answers = list(answers)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=a, port=port, family=family, proto=0, flags=0)
            for a in self._answers.pop(0)
        ]

    async def close(self) -> None:
        return None


async def test_every_resolution_is_checked_so_rebinding_is_refused() -> None:
    dns = _ScriptedDNS(["93.184.216.34"], ["127.0.0.1"], ["93.184.216.34", "10.0.0.7"])
    resolver = GuardedResolver(SSRFGuard(), dns)
    assert [h["host"] for h in await resolver.resolve("hooks.example.com", 443)] == [
        "93.184.216.34"
    ]
    with pytest.raises(DestinationBlocked, match="127.0.0.1"):
        await resolver.resolve("hooks.example.com", 443)
    with pytest.raises(DestinationBlocked, match="10.0.0.7"):  # one bad answer spoils all
        await resolver.resolve("hooks.example.com", 443)
