"""service.postgresql: Django's backend with psycopg's own timestamp loader
gives the values Django's loader would."""
import datetime

import pytest
from django.db import connection
from django.db.backends.postgresql.psycopg_any import register_tzloader
from psycopg.pq import Format

from service.mesh.models import Mesh
from service.postgresql.base import TIMESTAMPTZ_OID, UTCTimestamptzLoader

INSTANTS = ["2026-11-22 03:04:05.123456+05:30", "0001-01-01 00:00:00+00", "9999-12-31 23:59:59.999999+00",
            "2000-02-29 12:00:00-08"]

pytestmark = pytest.mark.django_db


def read(cursor, literals):
    cursor.execute("SELECT " + ", ".join("%s::timestamptz" for _ in literals), literals)
    return cursor.fetchone()


def test_every_cursor_loads_timestamps_with_the_utc_loader():
    with connection.cursor() as cursor:
        # Django's create_cursor would put its own loader on a cursor whose zone differs.
        assert cursor.cursor.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT) is UTCTimestamptzLoader


def test_timestamps_are_the_instants_djangos_loader_gives_in_utc():
    with connection.cursor() as cursor:
        ours = read(cursor, INSTANTS)
        register_tzloader(connection.timezone, cursor.cursor)  # Django's own, on this cursor only
        assert cursor.cursor.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT) is not UTCTimestamptzLoader
        djangos = read(cursor, INSTANTS)
    assert ours == djangos
    assert [value.tzinfo for value in ours] == [datetime.timezone.utc] * len(INSTANTS)
    assert ours[0] == datetime.datetime(2026, 11, 21, 21, 34, 5, 123456, tzinfo=datetime.timezone.utc)


def test_a_saved_timestamp_reads_back_unchanged(tenant):
    mesh = Mesh.objects.create(tenant=tenant, name="m1")
    stored = Mesh.objects.get(pk=mesh.pk)
    assert stored.created_at == mesh.created_at and stored.created_at.tzinfo is datetime.timezone.utc
