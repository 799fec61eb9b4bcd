"""What both benchmark programs share: Django set up on a throwaway test database."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable


class BenchmarkError(Exception):
    """A request was refused or a message not delivered: the measurement would be meaningless."""


def run_on_test_database(pg_name: str, bench: Callable[[], int]) -> int:
    """Configure Django with ``tests.settings``, create a test database (SQLite in memory, or
    PostgreSQL ``test_<pg_name>`` with ``DAGW_TEST_DATABASE=postgresql``), run ``bench`` and
    drop the database again. Returns ``bench``'s exit status, 2 on :class:`BenchmarkError`."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    os.environ.setdefault("DAGW_PG_NAME", pg_name)
    import django

    django.setup()

    from django.db import connection
    from django.test.utils import setup_test_environment, teardown_test_environment

    setup_test_environment(debug=False)
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        return bench()
    except BenchmarkError as error:
        print(f"\nBenchmark aborted: {error}", file=sys.stderr)
        return 2
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
        teardown_test_environment()


def database_label() -> str:
    from django.db import connection

    return {"postgresql": "PostgreSQL", "sqlite": "SQLite", "mysql": "MariaDB/MySQL"}.get(
        connection.vendor, connection.vendor
    )


def database_description() -> str:
    """The database server and driver versions, for a results table's header."""
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            import psycopg

            cursor.execute("SHOW server_version")
            return f"PostgreSQL {cursor.fetchone()[0]} (psycopg {psycopg.__version__})"
        if connection.vendor == "sqlite":
            cursor.execute("SELECT sqlite_version()")
            return f"SQLite {cursor.fetchone()[0]} (in-memory test database)"
        if connection.vendor == "mysql":
            import MySQLdb

            cursor.execute("SELECT VERSION()")
            driver = ".".join(str(part) for part in MySQLdb.version_info[:3])
            return f"{cursor.fetchone()[0]} (mysqlclient {driver})"
    return connection.vendor
