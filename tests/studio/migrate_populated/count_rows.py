"""Print, as JSON, every table of the database with its row count and its ids (where it has an id).

Run by tests/studio/test_migrate_populated.py in a tree's working directory, before and after the
migration. Raw SQL over the tables the database has, so rows no model knows of are counted too.
"""

import json
import os
import sys

sys.path.insert(0, os.getcwd())
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402


def table_rows() -> dict:
    found = {}
    with connection.cursor() as cursor:
        for table in sorted(connection.introspection.table_names(cursor)):
            quoted = connection.ops.quote_name(table)
            columns = {c.name for c in connection.introspection.get_table_description(cursor, table)}
            cursor.execute(f"SELECT COUNT(*) FROM {quoted}")  # noqa: S608 - a table name from the database itself
            count = cursor.fetchone()[0]
            ids = None
            if "id" in columns:
                cursor.execute(f"SELECT id FROM {quoted} ORDER BY id")  # noqa: S608 - as above
                ids = [row[0] for row in cursor.fetchall()]
            found[table] = {"rows": count, "ids": ids}
    return found


if __name__ == "__main__":
    print(json.dumps(table_rows()))
