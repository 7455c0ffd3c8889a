"""What a route claims in its meshes, that no other route of a mesh may:
HTTP and gRPC routes their hostnames (Envoy refuses a domain that appears
twice among a listener's virtual hosts), TCP routes their ports (a listener
each, and never the mesh's interception port).

Claims are rows with a unique constraint per mesh (HostnameClaim, PortClaim),
written in the route's own transaction, so the check is one indexed insert
whatever the size of the mesh, and of two routes racing for one hostname
exactly one commits: the other's insert meets the winner's row (waiting for it
to commit if need be) and becomes the same field-level 400 as a plain clash.
ChangeSet.commit calls `sync` with the route's meshes already locked (their
revision bump), so a mesh's interception port cannot change under the check.
"""
from django.db import connection
from rest_framework import serializers

from service import sql

from service.mesh.models import HostnameClaim, PortClaim, RouteType
from service.mesh.validation import invalid


def tcp_ports(rules) -> list[int]:
    return [match["port"] for rule in rules for match in rule.get("matches", [])]


def claim_model(route):
    return PortClaim if route.type == RouteType.TCP else HostnameClaim


def claimed(route, mesh_ids) -> set[tuple[int, object]]:
    """(mesh id, hostname or port) of everything the route claims."""
    values = tcp_ports(route.rules) if route.type == RouteType.TCP else route.hostnames
    return {(mesh_id, value) for mesh_id in mesh_ids for value in values}


def sync(route, meshes, existed: bool):
    """Make the route's claim rows what it claims in `meshes` (locked Mesh rows)
    now; raise a field-level ValidationError if another route holds one."""
    model = claim_model(route)
    if model is PortClaim:
        check_interception_ports(route, meshes)
    wanted = claimed(route, [mesh.pk for mesh in meshes])
    held = {}
    if existed:
        held = {(claim.mesh_id, getattr(claim, value_field(model))): claim.pk
                for claim in sql.select(model, "route_id = %s", [route.pk])}
    stale = [pk for claim, pk in held.items() if claim not in wanted]
    if stale:
        model.objects.filter(pk__in=stale).delete()
    missing = wanted - held.keys()
    if missing:
        taken = missing - insert_unclaimed(model, route, missing)
        if taken:
            raise clash(route, model, taken)


def value_field(model) -> str:
    return "port" if model is PortClaim else "hostname"


def insert_unclaimed(model, route, claims) -> set[tuple[int, object]]:
    """Insert the claims no other route holds; return those inserted. One
    statement: ON CONFLICT DO NOTHING skips (after waiting for an uncommitted
    holder to finish) what the unique constraint says is taken."""
    table, field = model._meta.db_table, value_field(model)
    ordered = sorted(claims)  # one order for every writer, so inserts never wait on each other in a cycle
    rows = ", ".join(["(%s, %s, %s)"] * len(ordered))
    params = [item for mesh_id, value in ordered for item in (mesh_id, route.pk, value)]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (mesh_id, route_id, {field}) VALUES {rows} "
            f"ON CONFLICT DO NOTHING RETURNING mesh_id, {field}",
            params,
        )
        return set(cursor.fetchall())


def clash(route, model, taken) -> serializers.ValidationError:
    field = value_field(model)
    holder = (model.objects.filter(mesh_id__in={mesh_id for mesh_id, _ in taken},
                                   **{f"{field}__in": {value for _, value in taken}})
              .exclude(route=route).select_related("route").order_by(field).first())
    if model is PortClaim:
        return invalid("rules", f"tcp-routes/{holder.route.name} already listens on port {holder.port} in a mesh "
                                "this route is attached to.", "port_in_use")
    index = route.hostnames.index(holder.hostname)
    return invalid(f"hostnames[{index}]", f"{holder.route.kind}/{holder.route.name} already serves "
                                          f"'{holder.hostname}' in a mesh this route is attached to.",
                   "hostname_in_use")


def check_interception_ports(route, meshes):
    ports = set(tcp_ports(route.rules))
    for mesh in meshes:
        if mesh.interception_port in ports:
            raise invalid("rules", f"Port {mesh.interception_port} is mesh '{mesh.name}''s interception port.",
                          "port_in_use")


def port_holder(mesh, port):
    """The route that listens on `port` in `mesh`, if any."""
    claim = PortClaim.objects.filter(mesh=mesh, port=port).select_related("route").first()
    return claim.route if claim else None
