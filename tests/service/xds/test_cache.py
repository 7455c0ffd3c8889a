"""The snapshot cache as a pure object: no server, no database."""
import asyncio
import threading

from service.xds.cache import CacheKey, SnapshotCache
from tests.service.xds.resources import mesh_snapshot

KEY = CacheKey("acme", "m1", "aws", "us-east-1")


def test_get_returns_what_was_set_per_key():
    cache = SnapshotCache()
    snapshot = mesh_snapshot()
    cache.set(KEY, snapshot)
    assert cache.get(KEY) is snapshot
    assert cache.get(CacheKey("acme", "m1", "aws", "eu-west-1")) is None
    assert cache.get(CacheKey("globex", "m1", "aws", "us-east-1")) is None


def test_a_watch_is_woken_on_set_and_not_after_close():
    async def scenario():
        cache = SnapshotCache()
        woken = []
        watch = cache.watch(KEY, lambda: woken.append(cache.get(KEY)))
        first = mesh_snapshot("a")
        cache.set(KEY, first)
        cache.set(KEY, first)  # the same snapshot again is no change
        cache.set(CacheKey("acme", "m2"), mesh_snapshot("b"))  # another key
        watch.close()
        cache.set(KEY, mesh_snapshot("c"))
        await asyncio.sleep(0)
        return woken, first

    woken, first = asyncio.run(scenario())
    assert woken == [first]


def test_a_set_from_another_thread_wakes_the_watch_on_its_loop():
    async def scenario():
        cache = SnapshotCache()
        loop_thread = threading.current_thread()
        woken = asyncio.Event()
        threads = []
        cache.watch(KEY, lambda: (threads.append(threading.current_thread()), woken.set()))
        setter = threading.Thread(target=cache.set, args=(KEY, mesh_snapshot()))
        setter.start()
        setter.join()
        await asyncio.wait_for(woken.wait(), 5)
        return threads, loop_thread

    threads, loop_thread = asyncio.run(scenario())
    assert threads == [loop_thread]


def test_the_first_watch_of_a_key_without_snapshot_asks_the_feeder():
    async def scenario():
        cache = SnapshotCache()
        asked = []
        cache.on_missing = asked.append
        cache.watch(KEY, lambda: None)
        cache.watch(KEY, lambda: None)  # still missing: asked again (the feeder coalesces)
        cache.set(KEY, mesh_snapshot())
        other = CacheKey("acme", "m1", "gcp", "europe-west1")
        cache.watch(KEY, lambda: None)  # has one now: not asked
        cache.watch(other, lambda: None)
        return asked, other

    asked, other = asyncio.run(scenario())
    assert asked == [KEY, KEY, other]


def test_keys_are_listed_per_mesh_and_unwatched_snapshots_forgotten():
    async def scenario():
        cache = SnapshotCache()
        east, west = KEY, CacheKey("acme", "m1", "aws", "us-west-2")
        cache.set(east, mesh_snapshot())
        cache.set(west, mesh_snapshot())
        cache.set(CacheKey("globex", "m1", "aws", "us-east-1"), mesh_snapshot())
        watch = cache.watch(east, lambda: None)
        listed = (cache.keys("acme", "m1"), cache.watched_keys("acme", "m1"), cache.meshes())
        cache.forget("acme", "m1")
        after_forget = cache.keys("acme", "m1")
        watch.close()
        return listed, after_forget, cache.watch_count()

    (keys, watched, meshes), after_forget, watches = asyncio.run(scenario())
    assert keys == {KEY, CacheKey("acme", "m1", "aws", "us-west-2")}
    assert watched == {KEY}
    assert meshes == {("acme", "m1"), ("globex", "m1")}
    assert after_forget == {KEY}  # the watched key keeps its snapshot
    assert watches == 0


def test_the_last_watch_of_a_key_closing_drops_its_snapshot():
    # A stream's locality comes from the proxy, so a proxy naming a new region on
    # every stream must not leave a snapshot per region behind.
    async def scenario():
        cache = SnapshotCache()
        cache.set(KEY, mesh_snapshot())
        first, second = cache.watch(KEY, lambda: None), cache.watch(KEY, lambda: None)
        first.close()
        kept = cache.get(KEY)
        second.close()
        return kept, cache.get(KEY), cache.keys("acme", "m1")

    kept, after, keys = asyncio.run(scenario())
    assert kept is not None
    assert after is None and keys == set()
