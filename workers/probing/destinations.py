"""Where a probe may go. A hosted prober is a tool a tenant could aim at the
operator's own network, so every destination is resolved first and each
resolved address is checked against the deny list before a packet is sent;
the probe then connects to that checked address itself (never to the name
again, which a rebinding DNS server could point elsewhere in between)."""
import asyncio
import ipaddress
import socket
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Refused whatever the operator configures: the unspecified addresses reach the
# prober's own host ("this host" on Linux).
ALWAYS_DENIED = ("0.0.0.0/8", "::/128")
LOOPBACK = ("127.0.0.0/8", "::1/128")


class Refused(Exception):
    """The destination is not probed; the message says why."""


@dataclass(frozen=True)
class DenyList:
    networks: tuple[IPNetwork, ...]

    @classmethod
    def of(cls, cidrs, *, allow_loopback: bool = False) -> "DenyList":
        cidrs = [*ALWAYS_DENIED, *([] if allow_loopback else LOOPBACK), *cidrs]
        return cls(tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs))

    @classmethod
    def from_settings(cls) -> "DenyList":
        from django.conf import settings

        return cls.of(settings.PROBE_DENY_NETWORKS, allow_loopback=settings.PROBE_ALLOW_LOOPBACK)

    def network_of(self, address: IPAddress) -> IPNetwork | None:
        """The denied network that holds the address, or None if it may be probed."""
        # ::ffff:169.254.169.254 reaches 169.254.169.254 on a dual-stack socket.
        forms = [address, address.ipv4_mapped] if address.version == 6 and address.ipv4_mapped else [address]
        for form in forms:
            for network in self.networks:
                if form in network:
                    return network
        return None


@dataclass(frozen=True)
class Destination:
    ip: IPAddress  # the checked address the probe connects to
    port: int
    name: str  # the host name it was resolved from, or "" for an IP address

    @property
    def label(self) -> str:
        """ip:port, with IPv6 addresses in brackets."""
        return f"[{self.ip}]:{self.port}" if self.ip.version == 6 else f"{self.ip}:{self.port}"


def literal_ip(address: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        return None


async def resolve(address: str, port: int, deny: DenyList) -> Destination:
    """The first address ``address`` resolves to that the deny list allows.

    Raises Refused when every address it resolves to is denied, and OSError
    when the name does not resolve."""
    ip = literal_ip(address)
    if ip is not None:
        network = deny.network_of(ip)
        if network is not None:
            raise Refused(f"refused: {address} is in a denied network ({network})")
        return Destination(ip, port, "")
    candidates = await resolved_addresses(address, port)
    denied = []
    for candidate in candidates:
        network = deny.network_of(candidate)
        if network is None:
            return Destination(candidate, port, address)
        denied.append(f"{candidate} ({network})")
    raise Refused(f"refused: {address} resolves only to addresses in denied networks: {', '.join(denied)}")


async def resolved_addresses(name: str, port: int) -> list[IPAddress]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            name, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except socket.gaierror as error:
        raise OSError(f"{name} does not resolve: {error.strerror}") from error
    # getaddrinfo's order (RFC 6724, /etc/gai.conf) decides which address is tried first.
    addresses = dict.fromkeys(ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos)
    return list(addresses)
