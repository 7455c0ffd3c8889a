"""What a probe is asked to do, whom it probes, and what it found."""
from dataclasses import dataclass
from typing import Any, Hashable

# The health check's protocol block -> the protocol the prober speaks.
PROTOCOLS = {
    "http_health_check": "HTTP",
    "https_health_check": "HTTPS",
    "http2_health_check": "HTTP2",
    "tcp_health_check": "TCP",
    "grpc_health_check": "GRPC",
}


def user_agent(region: str) -> str:
    """What every probe calls itself, so a customer can allow or trace it."""
    return f"Interlock-HealthCheck/1.0 (region={region})"


@dataclass(frozen=True)
class ProbeSpec:
    protocol: str  # HTTP | HTTPS | HTTP2 | TCP | GRPC
    port: int | None  # None: each target's own serving port
    host: str = ""  # Host header / TLS SNI / gRPC authority; "" means the target's address
    request_path: str = "/"
    response: str = ""  # HTTP: a substring of the body; TCP: the expected reply
    request: str = ""  # TCP: what to send after connecting
    grpc_service_name: str = ""
    timeout: float = 5.0  # the whole probe: name resolution, connect, TLS, answer
    verify_tls: bool = False  # as Envoy's and GCP's probes, certificates are not checked unless asked
    # HTTP2 only: h2 over TLS (ALPN "h2") instead of prior-knowledge h2c. Interlock's
    # clusters reach HTTP2 backends in plaintext, so h2c is what the proxies speak.
    tls: bool = False

    @property
    def uses_tls(self) -> bool:
        return self.protocol == "HTTPS" or (self.protocol == "HTTP2" and self.tls)


@dataclass(frozen=True)
class ProbeTarget:
    key: Hashable  # opaque to the prober, e.g. the endpoint's id
    address: str  # an IP address or a host name
    port: int  # the endpoint's serving port, probed when the spec sets none


@dataclass(frozen=True)
class ProbeResult:
    key: Hashable
    ok: bool
    latency_ms: float | None  # time to the answer; None when nothing answered
    address: str  # what was probed, "ip:port" ("[ip]:port" for IPv6); "" if nothing was
    error: str = ""  # "" when ok, otherwise why, in words a person can act on


def spec_of(health_check: Any) -> ProbeSpec:
    """The probe a mesh.HealthCheck row asks for (its one protocol block)."""
    for field, protocol in PROTOCOLS.items():
        block = getattr(health_check, field)
        if block is not None:  # {} is a block too: every field at its default
            return ProbeSpec(
                protocol=protocol,
                port=block.get("port"),
                host=block.get("host") or "",
                request_path=block.get("request_path") or "/",
                response=block.get("response") or "",
                request=block.get("request") or "",
                grpc_service_name=block.get("grpc_service_name") or "",
                timeout=float(health_check.timeout_sec),
                verify_tls=bool(block.get("verify_tls", False)),
                tls=bool(block.get("tls", False)),
            )
    raise ValueError(f"health check {health_check.name!r} sets none of {', '.join(PROTOCOLS)}")
