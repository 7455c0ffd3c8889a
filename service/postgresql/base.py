"""Django's PostgreSQL backend, loading timestamps with psycopg's C loader.

Django loads every timestamptz through a Python subclass of psycopg's
TimestamptzLoader, so that each value carries Django's tzinfo; that parses
each value in Python, about 2.8 us against 0.35 us here (a route write reads
a dozen, a page of 100 resources two hundred). Where Django's zone is UTC,
which it also makes the connection's TimeZone, psycopg's own loader (C, in
psycopg's binary build) already returns the same values, in
datetime.timezone.utc; there this backend loads with that one.

And every round trip has a deadline kept by the client (deadlines.py), so
that a frozen or unreachable server fails a request within seconds instead
of holding it.
"""
import datetime
from contextlib import nullcontext
from functools import lru_cache

from django.db.backends import utils
from django.db.backends.postgresql import base
from psycopg import adapt, adapters
from psycopg.pq import Format

from service.postgresql.deadlines import watchdog

TIMESTAMPTZ_OID = adapters.types["timestamptz"].oid
PsycopgTimestamptzLoader = adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT)


class UTCTimestamptzLoader(adapt.Loader):
    """psycopg's loader, with the `timezone` Django's create_cursor compares
    with its own (a loader without one it would replace on every cursor)."""

    timezone = datetime.timezone.utc

    def __init__(self, oid, context=None):
        super().__init__(oid, context)
        self.loader = PsycopgTimestamptzLoader(oid, context)

    def load(self, data):
        return self.loader.load(data)


@lru_cache
def with_utc_loader(template: adapt.AdaptersMap) -> adapt.AdaptersMap:
    adapters_map = adapt.AdaptersMap(template)
    adapters_map.register_loader(TIMESTAMPTZ_OID, UTCTimestamptzLoader)
    return adapters_map


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self):
        params = super().get_connection_params()
        if self.timezone == UTCTimestamptzLoader.timezone:
            params["context"] = with_utc_loader(params["context"])
        return params

    def within_deadline(self):
        """Bounds the round trip about to run by the database's RESPONSE_TIMEOUT (settings.py)."""
        timeout = self.settings_dict.get("RESPONSE_TIMEOUT")
        if not timeout or self.connection is None or self.connection.closed:
            return nullcontext()
        return watchdog.watch(self.connection.pgconn.socket, timeout)

    def make_cursor(self, cursor):
        return CursorWithDeadline(cursor, self)

    def make_debug_cursor(self, cursor):
        return DebugCursorWithDeadline(cursor, self)

    def commit(self):
        with self.within_deadline():
            super().commit()

    def rollback(self):
        with self.within_deadline():
            super().rollback()

    def is_usable(self):
        with self.within_deadline():
            return super().is_usable()


class DeadlineMixin:
    def execute(self, sql, params=None):
        with self.db.within_deadline():
            return super().execute(sql, params)

    def executemany(self, sql, param_list):
        with self.db.within_deadline():
            return super().executemany(sql, param_list)


class CursorWithDeadline(DeadlineMixin, utils.CursorWrapper):
    pass


class DebugCursorWithDeadline(DeadlineMixin, utils.CursorDebugWrapper):
    pass
