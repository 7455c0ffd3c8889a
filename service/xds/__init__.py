"""The xDS side of Interlock: stored policy in, Envoy configuration out.

    policy.py    the one module that reads the ORM: a mesh's stored policy as
                 plain immutable values (MeshPolicy)
    translate.py pure functions: MeshPolicy -> Translation (Listeners, Routes,
                 Clusters, ClusterLoadAssignments), reusing the previous
                 Translation's resources where their inputs did not change
    build/       the Envoy message builders translate.py calls, one module
                 per resource type (docs/xds-translation.md)
    snapshot.py  Resource and Snapshot: immutable, serialized once, hashed
    cache.py     snapshots by key, and watches on them (no gRPC, no ORM)
    server.py    grpc.aio ADS (state of the world and delta), CSDS, LRS; it
                 reads only the cache
    auth.py      node tokens on streams
    protocol.py  the SotW and delta protocol of one stream, pure
    sync.py      change notices -> translations -> cache
    records.py   per-proxy ACK/NACK records, written in batches (models.py)
    load.py      LRS samples for the autoscaler (Redis)
    csds.py      client status from the records
    replica.py   one replica wired together (`interlock xds`, `interlock dev`)

The cache and the stream server meet at the small interface go-control-plane
uses: the server asks the cache for the snapshot of a key and is told when it
changes.
"""
