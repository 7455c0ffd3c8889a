"""The few statements the API's write path runs on every request, built once
per process from the models' own metadata.

Building a query costs the ORM more CPU than running it: on the development
machine a get by name took 508 us against 127 us for the same SELECT sent
as-is, and an insert 233 us against 109 us (docs/performance.md). A route
write runs a dozen. These helpers take a model and a fixed WHERE or SET
clause, build the SQL once, and from then on only bind parameters. They go
through Django's connection and cursor, so transactions, on_commit hooks and
the test's query counts see them as any ORM query; the values pass through
the fields' own conversions both ways (pre_save, get_db_prep_save, from_db).
"""
import functools
from dataclasses import dataclass

from django.db import connection


def quote(name: str) -> str:
    return connection.ops.quote_name(name)


@functools.cache
def row_reader(model):
    """The column list of `model`'s rows, and how to make an instance of one."""
    fields = model._meta.concrete_fields
    columns = ", ".join(quote(field.column) for field in fields)
    names = [field.attname for field in fields]
    converters = []
    for i, field in enumerate(fields):
        column = field.get_col(model._meta.db_table)
        found = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        if found:
            converters.append((i, column, found))

    def instance(row):
        if converters:
            row = list(row)
            for i, column, found in converters:
                for convert in found:
                    row[i] = convert(row[i], column, connection)
        return model.from_db(connection.alias, names, row)

    return columns, instance


def select(model, where: str, params) -> list:
    """`model`'s rows that match `where` (SQL, with %s placeholders)."""
    columns, instance = row_reader(model)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns} FROM {quote(model._meta.db_table)} WHERE {where}", params)
        return [instance(row) for row in cursor.fetchall()]


def among(column: str, values) -> tuple[str, list]:
    """`column IN (values)`, which SQLite takes too (no arrays), and a
    condition nothing meets for no values (an empty IN is not SQL)."""
    values = list(values)
    if not values:
        return "1 = 0", []
    return f"{column} IN ({', '.join(['%s'] * len(values))})", values


def select_both(first, first_where: str, first_params, second, second_where: str, second_params) -> tuple[list, list]:
    """select() of two models in one round trip: their rows side by side in
    a FULL JOIN that matches nothing, so that each row carries one of them
    and NULLs for the other."""
    (first_columns, make_first), (second_columns, make_second) = row_reader(first), row_reader(second)
    width = len(first._meta.concrete_fields)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT one.*, two.* FROM (SELECT {first_columns} FROM {quote(first._meta.db_table)} "
                       f"WHERE {first_where}) AS one FULL JOIN (SELECT {second_columns} FROM "
                       f"{quote(second._meta.db_table)} WHERE {second_where}) AS two ON false",
                       [*first_params, *second_params])
        rows = cursor.fetchall()
    # The primary key comes first (concrete_fields' order), and is never NULL in a row that exists.
    return ([make_first(row[:width]) for row in rows if row[0] is not None],
            [make_second(row[width:]) for row in rows if row[width] is not None])


def row_lock() -> str:
    """The lock a writer takes on a row it is about to change: FOR NO KEY
    UPDATE queues the row's other writers, but not the foreign-key checks of
    rows that refer to it (FOR KEY SHARE), which a plain FOR UPDATE would hold
    up."""
    features = connection.features
    if features.has_select_for_no_key_update:
        return "FOR NO KEY UPDATE"
    return "FOR UPDATE" if features.has_select_for_update else ""  # SQLite locks the whole database anyway


@functools.cache
def related_sql(model, relation: str) -> str:
    """The rows a many-to-many `relation` of one `model` instance links to."""
    field = model._meta.get_field(relation)
    target, through = field.related_model._meta, quote(field.remote_field.through._meta.db_table)
    table = quote(target.db_table)
    columns = ", ".join(f"{table}.{quote(column.column)}" for column in target.concrete_fields)
    return (f"SELECT {columns} FROM {table} JOIN {through} ON {through}.{quote(field.m2m_reverse_name())} = "
            f"{table}.{quote(target.pk.column)} WHERE {through}.{quote(field.m2m_column_name())} = %s")


def prefetch(instance, relation: str):
    """prefetch_related(`relation`) for one instance: the same rows, in the
    same order (the same join, and no ORDER BY), by a prebuilt statement."""
    _, make = row_reader(type(instance)._meta.get_field(relation).related_model)
    with connection.cursor() as cursor:
        cursor.execute(related_sql(type(instance), relation), [instance.pk])
        remember_prefetched(instance, getattr(instance, relation), [make(row) for row in cursor.fetchall()])


def remember_prefetched(instance, manager, rows):
    """What prefetch_related would leave on `instance` for `manager`, without
    the query: the request knows the rows (it read or just wrote them).
    Django keeps a prefetched relation as a done queryset in this cache."""
    queryset = manager.get_queryset()
    queryset._result_cache, queryset._prefetch_done = list(rows), True
    if not hasattr(instance, "_prefetched_objects_cache"):
        instance._prefetched_objects_cache = {}
    instance._prefetched_objects_cache[manager.prefetch_cache_name] = queryset


def update(model, assignments: str, where: str, params, returning=False):
    """UPDATE `model`'s rows that match `where`: the number of rows, or with
    `returning` the rows as they are after it."""
    sql = f"UPDATE {quote(model._meta.db_table)} SET {assignments} WHERE {where}"
    with connection.cursor() as cursor:
        if not returning:
            cursor.execute(sql, params)
            return cursor.rowcount
        columns, instance = row_reader(model)
        cursor.execute(f"{sql} RETURNING {columns}", params)
        return [instance(row) for row in cursor.fetchall()]


@functools.cache
def update_each_sql(model, names: tuple[str, ...]) -> tuple[str, list]:
    fields = [model._meta.get_field(name) for name in names]
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in fields)
    key = quote(model._meta.pk.column)
    return f"UPDATE {quote(model._meta.db_table)} SET {assignments} WHERE {key} = %s", fields


def update_each(objs, names: tuple[str, ...]):
    """UPDATE the row of each of `objs` with its values of the fields `names`,
    one statement per row sent in one round trip (psycopg pipelines
    executemany); for rows the caller holds locked. Django's bulk_update
    sends one statement with a CASE per field, which cost more CPU to build
    than the row-by-row UPDATEs it replaces."""
    if not objs:
        return
    sql, fields = update_each_sql(type(objs[0]), names)
    with connection.cursor() as cursor:
        cursor.executemany(sql, [[*column_values(obj, fields, adding=False), obj.pk] for obj in objs])


@functools.cache
def insert_sql(model, rows: int, ignore_conflicts: bool) -> tuple[str, list]:
    meta = model._meta.concrete_model._meta  # a proxy model's own meta has no auto_field
    fields = [field for field in meta.concrete_fields if field is not meta.auto_field]
    values = ", ".join(["(" + ", ".join(["%s"] * len(fields)) + ")"] * rows)
    tail = "ON CONFLICT DO NOTHING" if ignore_conflicts else f"RETURNING {quote(meta.pk.column)}"
    columns = ", ".join(quote(field.column) for field in fields)
    return f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES {values} {tail}", fields


def insert(objs, ignore_conflicts=False):
    """INSERT unsaved instances of one model in one statement; they get their
    primary keys (but with `ignore_conflicts`, where rows that break a unique
    constraint are skipped, and no key comes back)."""
    if not objs:
        return
    sql, params = insert_statement(objs, ignore_conflicts)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        keys = [] if ignore_conflicts else [pk for (pk,) in cursor.fetchall()]
    for obj, pk in zip(objs, keys):
        obj.pk = pk
    mark_saved(objs)


def insert_linked(instance, links: dict[str, list]):
    """insert([instance]) and, for each many-to-many relation in `links`, the
    rows that link it to the targets (in their order): one statement where
    an INSERT's WITH may INSERT (Postgres), one per table elsewhere."""
    model = type(instance)
    if not writes_in_with():
        insert([instance])
        for relation, targets in links.items():
            field = model._meta.get_field(relation)
            through, source, target = field.remote_field.through, field.m2m_field_name(), field.m2m_reverse_field_name()
            insert([through(**{f"{source}_id": instance.pk, f"{target}_id": row.pk}) for row in targets])
        return
    values = insert_statement([instance], False)[1]
    keys = [[row.pk for row in targets] for targets in links.values()]
    with connection.cursor() as cursor:
        cursor.execute(insert_linked_sql(model, tuple(links)), [*values, *keys])
        (instance.pk,) = cursor.fetchone()
    mark_saved([instance])


@functools.cache
def insert_linked_sql(model, relations: tuple[str, ...]) -> str:
    inserting, _ = insert_sql(model, 1, False)
    key = quote(model._meta.pk.column)
    parts = [f"made AS ({inserting})"]
    for i, relation in enumerate(relations):
        field = model._meta.get_field(relation)
        through = quote(field.remote_field.through._meta.db_table)
        columns = f"{quote(field.m2m_column_name())}, {quote(field.m2m_reverse_name())}"
        # Every key is a BigAutoField (settings.DEFAULT_AUTO_FIELD).
        parts.append(f"linked{i} AS (INSERT INTO {through} ({columns}) SELECT made.{key}, target "
                     "FROM made, unnest(%s::bigint[]) WITH ORDINALITY AS targets (target, n) ORDER BY n)")
    return f"WITH {', '.join(parts)} SELECT {key} FROM made"


def insert_statement(objs, ignore_conflicts: bool) -> tuple[str, list]:
    sql, fields = insert_sql(type(objs[0]), len(objs), ignore_conflicts)
    return sql, [value for obj in objs for value in column_values(obj, fields, adding=True)]


def column_values(obj, fields, adding: bool) -> list:
    """What `fields` of `obj` write to the database, as Model.save would
    send them (auto_now and auto_now_add fields stamped)."""
    return [field.get_db_prep_save(field.pre_save(obj, adding), connection) for field in fields]


def writes_in_with() -> bool:
    """Whether the database runs an INSERT in the WITH of another statement
    (Postgres does; SQLite does not)."""
    return connection.vendor == "postgresql"


def mark_saved(objs):
    for obj in objs:
        obj._state.adding, obj._state.db = False, connection.alias


@dataclass
class InsertNewThenUpdate:
    """insert(`objs`, ignore_conflicts=True), then update(`model`, ...): run
    alone, one round trip where an UPDATE's WITH may INSERT (Postgres), two
    elsewhere; or riding in the WITH of another statement (`with_clauses`),
    which then counts the rows updated as `SELECT count(*) FROM updated`.
    In a WITH the UPDATE does not see the rows inserted (all parts run on
    the statement's snapshot), so it must not refer to them."""

    objs: list
    model: type
    assignments: str
    where: str
    params: list

    def run(self) -> int:
        if not writes_in_with() or not self.objs:
            insert(self.objs, ignore_conflicts=True)
            return update(self.model, self.assignments, self.where, self.params)
        clauses, params = self.with_clauses()
        with connection.cursor() as cursor:
            cursor.execute(f"WITH {clauses} SELECT count(*) FROM updated", params)
            (updated,) = cursor.fetchone()
        self.done()
        return updated

    def with_clauses(self) -> tuple[str, list]:
        inserting, values = insert_statement(self.objs, ignore_conflicts=True)
        return (f"inserted AS ({inserting}), updated AS (UPDATE {quote(self.model._meta.db_table)} "
                f"SET {self.assignments} WHERE {self.where} RETURNING 1)"), [*values, *self.params]

    def done(self):
        """Call once the statement it rode in has run."""
        mark_saved(self.objs)


def assignments(instance, excluded: tuple[str, ...] = ()) -> tuple[str, list]:
    """The SET clause that writes every column of an existing `instance` but
    the primary key and the `excluded` fields, and its values (as Model.save
    would write them, auto_now fields stamped)."""
    assigning, fields = assignment_sql(type(instance), excluded)
    return assigning, column_values(instance, fields, adding=False)


@functools.cache
def assignment_sql(model, excluded: tuple[str, ...]) -> tuple[str, list]:
    fields = [field for field in model._meta.concrete_fields if not field.primary_key and field.name not in excluded]
    return ", ".join(f"{quote(field.column)} = %s" for field in fields), fields
