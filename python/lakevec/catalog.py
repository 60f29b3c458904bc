"""Iceberg catalogs: resolve a table name to its current metadata file.

lakevec reads Iceberg tables from their metadata files; a catalog only tells where the
current one is. The SQL catalog (the JDBC catalog of Java Iceberg, ``SqlCatalog`` of
pyiceberg and iceberg-rust) keeps it in the table ``iceberg_tables`` (columns
``catalog_name``, ``table_namespace``, ``table_name``, ``metadata_location``); lakevec
reads that row with the standard library's ``sqlite3`` for ``sqlite:///`` URIs, and with
SQLAlchemy (if installed) for any other database URI. REST catalogs are not supported:
the iceberg-rust REST client is not part of lakevec's dependency set.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping

from lakevec.exceptions import InvalidArgumentError, TableNotFoundError, UnsupportedFeatureError

__all__ = ["resolve"]

_QUERY = (
    "SELECT metadata_location FROM iceberg_tables WHERE catalog_name = ? AND table_namespace = ? AND table_name = ?"
)


def _split(name: str, catalog: Mapping[str, str]) -> tuple[str, str, str]:
    parts = name.split(".")
    if len(parts) < 2:
        raise InvalidArgumentError(
            f"catalog table name {name!r} must be 'catalog.namespace.table' or 'namespace.table'"
        )
    if "name" in catalog and parts[0] != catalog["name"]:
        return str(catalog["name"]), ".".join(parts[:-1]), parts[-1]
    if len(parts) == 2:
        return str(catalog.get("name", "default")), parts[0], parts[1]
    return parts[0], ".".join(parts[1:-1]), parts[-1]


def resolve(name: str, catalog: Mapping[str, str]) -> str:
    """The metadata location of table ``name`` in ``catalog``.

    Args:
        name: ``"catalog_name.namespace.table"`` (the first part is the catalog name the
            table was registered under, e.g. the name given to pyiceberg's
            ``load_catalog``), or ``"namespace.table"`` with ``catalog["name"]``.
        catalog: ``{"type": "sql", "uri": "sqlite:////path/catalog.db"}``; an optional
            ``"name"`` overrides the catalog name; ``"warehouse"`` is accepted and unused
            (metadata locations are absolute).

    Returns:
        The metadata file URI, to open with ``Table.open(..., format="iceberg")``.

    Raises:
        TableNotFoundError: no such table in the catalog (or no catalog database).
        UnsupportedFeatureError: a catalog type other than ``sql``, or a non-SQLite URI
            without SQLAlchemy installed.
        InvalidArgumentError: a malformed name or catalog.
    """
    kind = str(catalog.get("type", "sql")).lower()
    if kind != "sql":
        raise UnsupportedFeatureError(
            f"Iceberg catalog type {kind!r} is not supported (only 'sql'); "
            "open the table by its metadata.json path instead"
        )
    uri = catalog.get("uri")
    if not uri:
        raise InvalidArgumentError("an SQL catalog needs a 'uri' (e.g. 'sqlite:////tmp/catalog.db')")
    cat, ns, table = _split(name, catalog)
    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///") :]
        try:
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        except sqlite3.OperationalError as e:
            raise TableNotFoundError(f"cannot open the SQL catalog database {path!r}: {e}") from None
        try:
            row = con.execute(_QUERY, (cat, ns, table)).fetchone()
        except sqlite3.DatabaseError as e:
            raise TableNotFoundError(f"{path!r} is not an Iceberg SQL catalog: {e}") from None
        finally:
            con.close()
    else:
        try:
            import sqlalchemy
        except ImportError:
            raise UnsupportedFeatureError(
                f"SQL catalog URI {uri.split('://')[0]!r}:// needs SQLAlchemy (pip install sqlalchemy)"
            ) from None
        engine = sqlalchemy.create_engine(uri)
        with engine.connect() as con:
            row = con.execute(
                sqlalchemy.text(_QUERY.replace("?", ":c", 1).replace("?", ":n", 1).replace("?", ":t", 1)),
                {"c": cat, "n": ns, "t": table},
            ).fetchone()
    if row is None or not row[0]:
        raise TableNotFoundError(f"table {ns}.{table} not found in Iceberg catalog {cat!r}")
    return str(row[0])
