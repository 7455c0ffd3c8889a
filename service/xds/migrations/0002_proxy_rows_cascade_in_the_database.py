"""Proxy rows and their statuses are deleted by the database too when what
they belong to is deleted (ON DELETE CASCADE), not only by Django's collector.

The collector reads a mesh's proxies, deletes their statuses, then them, then
the mesh: a replica's recorder committing a proxy row or a status in between
made the deletion fail (a foreign-key violation, 409). With the cascade in the
database, what was committed meanwhile goes with the mesh. Postgres only: the
development server (SQLite) has a single writer.

Django does not declare this (before 6.1), so an AlterField of one of these
foreign keys would drop it: a later migration altering them must run this again.
"""
from django.db import migrations

# (table, column, referenced table) of the foreign keys that cascade in the database.
CASCADES = [
    ("xds_proxy", "mesh_id", "mesh_mesh"),
    ("xds_proxy", "tenant_id", "tenants_tenant"),
    ("xds_proxytypestatus", "proxy_id", "xds_proxy"),
]


def cascade_in_the_database(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    quote = schema_editor.quote_name
    with connection.cursor() as cursor:
        for table, column, target in CASCADES:
            constraints = connection.introspection.get_constraints(cursor, table)
            (name,) = [name for name, c in constraints.items() if c["foreign_key"] and c["columns"] == [column]]
            schema_editor.execute(
                f"ALTER TABLE {quote(table)} DROP CONSTRAINT {quote(name)}, "
                f"ADD CONSTRAINT {quote(name)} FOREIGN KEY ({quote(column)}) REFERENCES {quote(target)} (id) "
                "ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED"
            )


class Migration(migrations.Migration):
    dependencies = [
        ("xds", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(cascade_in_the_database, migrations.RunPython.noop),
    ]
