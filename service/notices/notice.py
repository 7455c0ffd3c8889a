"""The change notice: what the API publishes after a mesh change commits."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


def _check_str(field: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{field} must be a str, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{field} must not be empty")
    return value


def _str_tuple(field: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
        raise TypeError(f"{field} must be a sequence of str, not {type(value).__name__}")
    return tuple(_check_str(f"{field}[{i}]", item) for i, item in enumerate(value))


HEALTH_VALUES = ("UNKNOWN", "HEALTHY", "UNHEALTHY")


def _endpoint_health(index: int, value: Any) -> tuple[str, str, str, int, str]:
    field = f"endpoints[{index}]"
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)) or len(value) != 5:
        raise TypeError(f"{field} must be a (service, group, address, port, health) tuple")
    service, group, address, port, health = value
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"{field} port must be an int")
    if health not in HEALTH_VALUES:
        raise ValueError(f"{field} health must be one of {', '.join(HEALTH_VALUES)}")
    return (_check_str(f"{field} service", service), _check_str(f"{field} group", group),
            _check_str(f"{field} address", address), port, health)


@dataclass(frozen=True)
class ChangeNotice:
    """One committed change to a tenant's mesh policy.

    A notice is a hint, not the change itself: the database is the source of
    truth, and a consumer re-reads the policy of ``(tenant, mesh)`` at (or after)
    ``revision``. ``kinds`` names the policy kinds that changed (for example
    ``"http-routes"``, ``"endpoint-groups"``); ``resources`` optionally names
    the ``(kind, name)`` pairs touched, so a consumer may rebuild only those.
    An empty ``resources`` means "anything of ``kinds`` may have changed".

    ``endpoints`` carries endpoint health verdicts that changed (kind
    ``"endpoint-health"``), as ``(backend service, endpoint group, address,
    port, health)`` tuples with ``health`` one of UNKNOWN, HEALTHY, UNHEALTHY:
    such a notice is the change itself, so a consumer that holds the mesh's
    translation applies it without re-reading the policy (no revision is made:
    a verdict is not policy).

    Lists passed for ``kinds``/``resources``/``endpoints`` are stored as
    tuples, so a notice is hashable and immutable.
    """

    tenant: str
    mesh: str
    revision: int
    kinds: tuple[str, ...]
    resources: tuple[tuple[str, str], ...] = ()
    endpoints: tuple[tuple[str, str, str, int, str], ...] = ()

    def __post_init__(self) -> None:
        _check_str("tenant", self.tenant)
        _check_str("mesh", self.mesh)
        if isinstance(self.revision, bool) or not isinstance(self.revision, int):
            raise TypeError(f"revision must be an int, not {type(self.revision).__name__}")
        if self.revision < 0:
            raise ValueError("revision must not be negative")
        object.__setattr__(self, "kinds", _str_tuple("kinds", self.kinds))
        resources = self.resources
        if isinstance(resources, (str, bytes)) or not isinstance(resources, (tuple, list)):
            raise TypeError("resources must be a sequence of (kind, name) pairs")
        pairs = []
        for i, pair in enumerate(resources):
            pair = _str_tuple(f"resources[{i}]", pair)
            if len(pair) != 2:
                raise ValueError(f"resources[{i}] must be a (kind, name) pair")
            pairs.append(pair)
        object.__setattr__(self, "resources", tuple(pairs))
        object.__setattr__(self, "endpoints", tuple(_endpoint_health(i, item) for i, item in enumerate(self.endpoints)))

    def to_json(self) -> str:
        """Serialise to compact JSON; ``from_json(n.to_json()) == n``."""
        return json.dumps(
            {
                "tenant": self.tenant,
                "mesh": self.mesh,
                "revision": self.revision,
                "kinds": list(self.kinds),
                "resources": [list(pair) for pair in self.resources],
                "endpoints": [list(item) for item in self.endpoints],
            },
            separators=(",", ":"),
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, data: str) -> ChangeNotice:
        """Parse what :meth:`to_json` produced.

        Raises :class:`ValueError` on anything malformed: invalid JSON, not an
        object, a missing field, or a field of the wrong type. Unknown fields
        are ignored, so a newer publisher may add fields during a rolling
        deploy without breaking older subscribers.
        """
        if isinstance(data, (bytes, bytearray)):
            data = data.decode("utf-8")  # UnicodeDecodeError is a ValueError
        if not isinstance(data, str):
            raise ValueError(f"change notice must be a JSON string, not {type(data).__name__}")
        try:
            obj = json.loads(data)
        except json.JSONDecodeError as exc:
            raise ValueError(f"change notice is not valid JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise ValueError("change notice must be a JSON object")
        missing = [f for f in ("tenant", "mesh", "revision", "kinds") if f not in obj]
        if missing:
            raise ValueError(f"change notice lacks {', '.join(missing)}")
        try:
            return cls(
                tenant=obj["tenant"],
                mesh=obj["mesh"],
                revision=obj["revision"],
                kinds=obj["kinds"],
                resources=obj.get("resources", []),
                endpoints=obj.get("endpoints", []),
            )
        except TypeError as exc:
            raise ValueError(f"malformed change notice: {exc}") from None
