"""Translation time of a large mesh: from scratch, and from the previous
translation after a one-endpoint change (the aim: under 5 ms at 1000 backend
services), an endpoint health verdict change (the aim: one
ClusterLoadAssignment re-sent in under 5 ms of translation) or a one-route
change.

    python bench/xds_translate.py [--services 1000] [--repeat 200] [--json out.json]

Pure CPU, no database: the mesh is built as MeshPolicy values, as load_policy
would return them. Every policy is built afresh (no object shared with the
one before), so reuse is found by comparing values, as it is in production.
The mesh: N backend services, each with two backends (its own region and
another cloud) of 3 endpoints; N HTTP routes, one per service, two hostnames
and two rules each (a prefix rule split 90/10 with the next service, and a
catch-all with a retry policy); N/100 TCP routes.

Measured, each over --repeat runs (p50, p99, max of the wall clock; p50 and
p99 of this thread's CPU time, which leaves out waiting for a CPU on a shared
machine), beside floors from the same run:

    full translate        translate(policy), then snapshot(locality)
    one endpoint          translate(policy', previous) with one endpoint's
                          weight changed, then snapshot(locality)
    one route             the same with one route's weights changed
    one verdict           what a replica does with an "endpoint-health"
                          notice: the held translation's policy with one
                          endpoint's health flipped (with_endpoint_health),
                          translate(that, previous), then snapshot(locality);
                          no policy is rebuilt or compared afresh
    floor: serialize one ClusterLoadAssignment (Resource.of of one message)
    floor: Snapshot.of    a snapshot of the translation's resources, made
                          again from resources already built (the part of
                          "+ snapshot" that does not depend on the change)
    floor: dict lookups   one pass of `name in dict` over N names
    floor: compare        one pass comparing N services with their equals
"""
import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.xds.build.endpoints import load_assignment  # noqa: E402
from service.xds.policy import (  # noqa: E402
    BackendPolicy, EndpointPolicy, Locality, MeshPolicy, RoutePolicy, ServicePolicy, freeze,
)
from service.xds.snapshot import ENDPOINT, Resource, Snapshot  # noqa: E402
from service.xds.sync import with_endpoint_health  # noqa: E402
from service.xds.translate import ProxyLocality, translate  # noqa: E402

AIM_MS = 5.0
HERE = ProxyLocality("aws", "us-east-1", "us-east-1a")


def mesh(services: int, endpoint_weight: int = 1, route_weight: int = 90) -> MeshPolicy:
    """The bench mesh; service 0's first endpoint has `endpoint_weight`,
    route 0's split is `route_weight`/rest."""
    def endpoints(i, b):
        return tuple(EndpointPolicy(f"10.{b}.{i // 250}.{i % 250 * 4 + k}", 8080,
                                    weight=endpoint_weight if (i, b, k) == (0, 0, 0) else 1) for k in range(3))

    def backends(i):
        return (BackendPolicy(f"g{i}-east", Locality("aws", "us-east-1", "us-east-1a"), endpoints(i, 0)),
                BackendPolicy(f"g{i}-west", Locality("gcp", "europe-west1", "europe-west1-b"), endpoints(i, 1)))

    def route(i):
        split = route_weight if i == 0 else 90
        rules = [{"matches": [{"prefix_match": "/api"}],
                  "action": {"destinations": [{"service_name": f"s{i}", "weight": split},
                                              {"service_name": f"s{(i + 1) % services}", "weight": 100 - split}]}},
                 {"action": {"destinations": [{"service_name": f"s{i}", "weight": 1}],
                             "retry_policy": {"retry_conditions": ["5xx"], "num_retries": 2}}}]
        return RoutePolicy("http", f"r{i:04d}", (f"s{i}.example.com", f"s{i}.internal"), freeze(rules))

    def tcp_route(i):
        rules = [{"matches": [{"address": "0.0.0.0/0", "port": 20000 + i}],
                  "action": {"destinations": [{"service_name": f"s{i}", "weight": 1}]}}]
        return RoutePolicy("tcp", f"t{i:04d}", (), freeze(rules))

    def service(i):
        return ServicePolicy(f"s{i}", backends=backends(i), circuit_breakers=freeze({"max_requests": 100}))

    return MeshPolicy(
        "bench", "m1", 1, 15001,
        services=tuple(sorted((service(i) for i in range(services)), key=lambda s: s.name)),
        routes=tuple(sorted([route(i) for i in range(services)] + [tcp_route(i) for i in range(services // 100)],
                            key=lambda r: (r.type, r.name))),
    )


class Samples:
    """Wall-clock and CPU time (this thread's) of each run, in ms: on a shared
    machine the wall clock also counts time spent waiting for a CPU."""

    def __init__(self):
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def measure(self, fn):
        wall, cpu = time.perf_counter(), time.thread_time()
        result = fn()
        self.cpu.append((time.thread_time() - cpu) * 1000)
        self.wall.append((time.perf_counter() - wall) * 1000)
        return result

    def summary(self) -> dict:
        figures = {"runs": len(self.wall)}
        for clock, samples in (("wall", self.wall), ("cpu", self.cpu)):
            ordered = sorted(samples)
            figures[f"{clock}_p50_ms"] = statistics.median(ordered)
            figures[f"{clock}_p99_ms"] = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
            figures[f"{clock}_max_ms"] = ordered[-1]
        return figures


def timed(fn, repeat: int) -> dict:
    samples = Samples()
    for _ in range(repeat):
        samples.measure(fn)
    return samples.summary()


def alternating(policies, repeat: int, with_snapshot: bool) -> dict:
    """translate(next policy, previous) over two policies in turn: every run
    sees exactly the one change between them."""
    current = translate(policies[0])
    current.snapshot(HERE)
    samples = Samples()
    for i in range(repeat):
        policy, previous = policies[(i + 1) % 2], current
        if with_snapshot:
            current = samples.measure(lambda: _with_snapshot(translate(policy, previous=previous)))
        else:
            current = samples.measure(lambda: translate(policy, previous=previous))
        current.snapshot(HERE)  # when not measured, outside the timing: the next run reuses it
    return samples.summary()


def _with_snapshot(translation):
    translation.snapshot(HERE)
    return translation


def verdict_flips(policy: MeshPolicy, repeat: int, with_snapshot: bool) -> dict:
    """One endpoint of service 0 flipped between UNHEALTHY and HEALTHY on the
    held translation, as PolicySync applies a health notice; checks that the
    one ClusterLoadAssignment, and nothing else, is rebuilt."""
    service = policy.services[0]
    backend = service.backends[0]
    endpoint = backend.endpoints[0]
    flips = [[(service.name, backend.group, endpoint.address, endpoint.port, health)]
             for health in ("UNHEALTHY", "HEALTHY")]
    current = translate(policy)
    current.snapshot(HERE)
    samples = Samples()
    for i in range(repeat):
        previous, changes = current, flips[i % 2]
        if with_snapshot:
            current = samples.measure(lambda: _with_snapshot(with_endpoint_health(previous, changes)))
        else:
            current = samples.measure(lambda: with_endpoint_health(previous, changes))
        _check_only_one_rebuilt(previous.snapshot(HERE), current.snapshot(HERE), service.name)
    return samples.summary()


def _check_only_one_rebuilt(before, after, service: str) -> None:
    rebuilt = {(type_url, name) for type_url, by_name in after.resources.items()
               for name, resource in by_name.items() if before.resources[type_url].get(name) is not resource}
    if rebuilt != {(ENDPOINT, service)}:
        raise SystemExit(f"a verdict change rebuilt {sorted(rebuilt)[:5]}..., not one ClusterLoadAssignment")


def run(services: int, repeat: int) -> dict:
    base = mesh(services)
    endpoint_change = (mesh(services), mesh(services, endpoint_weight=5))
    route_change = (mesh(services), mesh(services, route_weight=50))
    full_repeat = max(5, repeat // 10)
    results = {
        "full translate + snapshot": timed(lambda: translate(base).snapshot(HERE), full_repeat),
        "one endpoint: translate": alternating(endpoint_change, repeat, with_snapshot=False),
        "one endpoint: translate + snapshot": alternating(endpoint_change, repeat, with_snapshot=True),
        "one route: translate + snapshot": alternating(route_change, repeat, with_snapshot=True),
        "one verdict: apply + translate": verdict_flips(base, repeat, with_snapshot=False),
        "one verdict: apply + translate + snapshot": verdict_flips(base, repeat, with_snapshot=True),
    }
    one_service = base.services[0]
    names = {s.name: s for s in base.services}
    twin = mesh(services).services
    results["floor: serialize one ClusterLoadAssignment"] = timed(
        lambda: Resource.of(load_assignment(one_service, HERE.cloud, HERE.region)), repeat)
    held = [r for by_name in translate(base).snapshot(HERE).resources.values() for r in by_name.values()]
    results["floor: Snapshot.of the mesh's resources"] = timed(lambda: Snapshot.of(held), repeat)
    results["floor: dict lookups over N names"] = timed(lambda: [s.name in names for s in twin], repeat)
    results["floor: compare N services with equals"] = timed(
        lambda: [a == b for a, b in zip(base.services, twin)], repeat)
    return results


def main(argv=None):
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--services", type=int, default=1000)
    cli.add_argument("--repeat", type=int, default=200)
    cli.add_argument("--json", metavar="PATH")
    args = cli.parse_args(argv)
    print(f"xds translate bench: {args.services} services, {args.services} HTTP routes, "
          f"{args.services // 100} TCP routes; load average at start {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} CPUs (shared with other work: figures are noisy)")
    results = run(args.services, args.repeat)
    width = max(map(len, results))
    print(f"{'':{width}}  {'runs':>5}  {'wall ms: p50':>12} {'p99':>7} {'max':>7}  {'cpu ms: p50':>11} {'p99':>7}")
    for name, f in results.items():
        print(f"{name:{width}}  {f['runs']:5d}  {f['wall_p50_ms']:12.3f} {f['wall_p99_ms']:7.3f} "
              f"{f['wall_max_ms']:7.3f}  {f['cpu_p50_ms']:11.3f} {f['cpu_p99_ms']:7.3f}")
    for measure, what in (("one endpoint: translate", "one-endpoint re-translation"),
                          ("one verdict: apply + translate + snapshot", "one verdict re-sending one CLA")):
        for clock in ("wall", "cpu"):
            verdict = "met" if results[measure][f"{clock}_p99_ms"] < AIM_MS else "NOT met"
            print(f"aim: {what} under {AIM_MS} ms at p99 ({clock} clock): {verdict}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
