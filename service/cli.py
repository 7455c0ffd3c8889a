"""`interlock`: the operator's command line.

    interlock migrate                 create or upgrade the database schema
    interlock api [--host --port]     serve the REST API (gunicorn, for production)
    interlock xds [--host --port --tls-cert --tls-key --replica]
                                      run one xDS server replica (ADS, CSDS, LRS)
    interlock tenant create NAME      a tenant and its first (owner) API key, as JSON
    interlock tenant quotas NAME [--max-resources N --max-endpoints N --max-proxies N]
                                      the tenant's quotas and usage, as JSON; sets those given
    interlock worker --region R [--concurrency N]
                                      run a health worker of source region R (queue health.<R>)
    interlock beat                    schedule the probe rounds (one beat at a time holds the lock)
    interlock dev [--demo]            the all-in-one on SQLite and the in-process bus (API + xDS +
                                      a worker and the beat; --demo: a demo tenant, two backends,
                                      a health check and an Envoy)
"""
import argparse
import json
import math
import os
import sys


# The API server's defaults. Processes, not threads: a request is Python on
# the CPU between its database and cache round trips, and threads of one
# process take turns at the GIL, which on the 2-core development machine cost
# a route write a third more CPU at 4 threads than at 1 (docs/performance.md).
# The number of processes is not gunicorn's 2 x cores + 1: a route write
# spends about 70 % of its time on its worker's CPU (the rest waiting for
# Postgres and Redis), so cores / 0.7 workers keep the cores busy, and more
# only add switching: on 2 cores a write cost 5-15 % more CPU with 5 workers
# than with 3 in one hour's alternating runs, and no less in any other
# (docs/performance.md). With one thread gunicorn runs its sync
# workers: a worker takes the next connection only when it is free, so
# requests queue in one line (the listening socket's), not behind whichever
# busy worker holds their keep-alive connection (gthread, which gunicorn runs
# for more threads).
WRITE_CPU_SHARE = 0.7
API_WORKERS = math.ceil((os.cpu_count() or 1) / WRITE_CPU_SHARE)
API_THREADS = 1


def setup_django():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "service.settings")
    import django

    django.setup()


def fail(code: str, message: str, field: str = "") -> int:
    print(json.dumps({"code": code, "message": message, "field": field}), file=sys.stderr)
    return 2


def migrate(args) -> int:
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    print(json.dumps({"migrated": True}))
    return 0


def tenant_create(args) -> int:
    from django.db import IntegrityError
    from rest_framework.exceptions import ValidationError

    from service.mesh.validation import resource_name
    from service.tenants.services import create_tenant

    try:
        resource_name(args.name)
        tenant, key = create_tenant(args.name)
    except ValidationError as exc:
        return fail("invalid_name", str(exc.detail[0]), "name")
    except IntegrityError:
        return fail("duplicate", f"A tenant named '{args.name}' exists already.", "name")
    print(json.dumps({"tenant": tenant.name, "api_key": key.plaintext, "role": key.record.role}))
    return 0


def tenant_quotas(args) -> int:
    from django.core.exceptions import ValidationError

    from service.tenants.api.serializers import TenantSerializer
    from service.tenants.models import Tenant
    from service.tenants.services import QUOTA_FIELDS, set_quotas

    values = {field: getattr(args, field) for field in QUOTA_FIELDS if getattr(args, field) is not None}
    try:
        tenant = set_quotas(args.name, values) if values else Tenant.objects.get(name=args.name)
    except Tenant.DoesNotExist:
        return fail("not_found", f"No tenant is named '{args.name}'.", "name")
    except ValidationError as exc:
        field, messages = sorted(exc.message_dict.items())[0]
        return fail("invalid", " ".join(messages), "--" + field.replace("_", "-"))
    # What the tenant itself sees at GET /api/v1/tenant.
    print(json.dumps(TenantSerializer(tenant).data))
    return 0


def api(args) -> int:
    from gunicorn.app.base import BaseApplication

    from service.wsgi import application

    class Server(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"{args.host}:{args.port}")
            self.cfg.set("workers", args.workers)
            self.cfg.set("threads", args.threads)
            self.cfg.set("accesslog", "-" if args.access_log else None)

        def load(self):
            return application

    Server().run()
    return 0


def xds(args) -> int:
    from django.conf import settings

    from service.xds.replica import ReplicaConfig, run
    from service.xds.server import AddressUnavailable

    config = ReplicaConfig(args.host, args.port, args.tls_cert, args.tls_key, args.replica,
                           credentials_file=str(settings.STATE_DIR / f"xds-{args.port}-credentials.json"))
    try:
        config.tls()
    except (OSError, ValueError) as exc:
        return fail("invalid_tls", str(exc), "tls")
    try:
        return run(config)
    except AddressUnavailable as exc:
        return fail("address_unavailable", str(exc), "port")


def worker(args) -> int:
    from workers.celery import ROUNDS_QUEUE, app, region_queue

    # The node name says the region, and the pid keeps two workers of one host apart.
    node = app.Worker(hostname=f"{args.region}-{os.getpid()}@%h", queues=[region_queue(args.region), ROUNDS_QUEUE],
                      concurrency=args.concurrency, loglevel=args.loglevel)
    node.start()
    return node.exitcode or 0


def beat(args) -> int:
    from django.conf import settings

    from workers.celery import app

    if not settings.REDIS_URL:
        return fail("no_redis", "interlock beat holds its lock in Redis: set REDIS_URL.", "REDIS_URL")
    app.Beat(scheduler="workers.beat:SingleBeatScheduler", loglevel=args.loglevel).run()
    return 0


def dev(args) -> int:
    from service import dev as devmode
    from service.xds.server import AddressUnavailable

    try:
        return devmode.run(args.host, args.port, demo=args.demo, xds_port=args.xds_port, proxy_port=args.proxy_port)
    except AddressUnavailable as exc:
        return fail("address_unavailable", str(exc), "xds_port")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="interlock", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    commands = root.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="create or upgrade the database schema").set_defaults(run=migrate)

    serve = commands.add_parser("api", help="serve the REST API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=API_WORKERS)
    serve.add_argument("--threads", type=int, default=API_THREADS)
    serve.add_argument("--access-log", action="store_true")
    serve.set_defaults(run=api)

    replica = commands.add_parser("xds", help="run one xDS server replica")
    replica.add_argument("--host", default="127.0.0.1")
    replica.add_argument("--port", type=int, default=18000)
    replica.add_argument("--tls-cert", default="", help="PEM certificate chain; serves TLS with --tls-key")
    replica.add_argument("--tls-key", default="", help="PEM private key of --tls-cert")
    replica.add_argument("--replica", default="",
                         help="this replica's id, unique among replicas (default <hostname>:<port>/<random>, "
                              "new at every start)")
    replica.set_defaults(run=xds)

    tenant = commands.add_parser("tenant", help="manage tenants").add_subparsers(dest="tenant_command", required=True)
    create = tenant.add_parser("create", help="create a tenant and print its first API key")
    create.add_argument("name")
    create.set_defaults(run=tenant_create)
    limits = tenant.add_parser("quotas", help="print a tenant's quotas and usage; set those given")
    limits.add_argument("name")
    # Taken as text: the domain checks them, so a bad one is a JSON error like any other.
    limits.add_argument("--max-resources", metavar="N", help="policy resources (meshes, routes, services, ...)")
    limits.add_argument("--max-endpoints", metavar="N", help="endpoints in all endpoint groups")
    limits.add_argument("--max-proxies", metavar="N", help="connected proxies")
    limits.set_defaults(run=tenant_quotas)

    work = commands.add_parser("worker", help="run a health worker of one source region")
    work.add_argument("--region", required=True, help="the source region this worker probes from")
    work.add_argument("--concurrency", type=int, default=os.cpu_count() or 1,
                      help="worker processes, each probing a batch at a time (default: the cores)")
    work.add_argument("--loglevel", default="INFO")
    work.set_defaults(run=worker)

    clock = commands.add_parser("beat", help="schedule the health checks' probe rounds")
    clock.add_argument("--loglevel", default="INFO")
    clock.set_defaults(run=beat)

    everything = commands.add_parser("dev", help="the all-in-one control plane on SQLite")
    everything.add_argument("--host", default="127.0.0.1")
    everything.add_argument("--port", type=int, default=8000)
    everything.add_argument("--xds-port", type=int, default=18000, help="the xDS server's port")
    everything.add_argument("--demo", action="store_true",
                            help="seed a demo tenant and mesh, run two demo backends and an Envoy, and say how to look")
    everything.add_argument("--proxy-port", type=int, default=15001,
                            help="with --demo: where the demo Envoy listens (the demo mesh's interception port)")
    everything.set_defaults(run=dev)
    return root


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if args.command == "dev":
        from service.dev import use_dev_environment

        use_dev_environment()
    if args.command == "migrate":
        os.environ["DB_STATEMENT_TIMEOUT"] = "0"  # a migration may rewrite a large table (docs/operations.md)
    setup_django()
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
