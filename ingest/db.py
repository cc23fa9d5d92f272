"""Database connections and the creation of the database itself."""

from __future__ import annotations

import logging

import psycopg
from psycopg import sql

logger = logging.getLogger(__name__)


def connect(url: str, *, autocommit: bool = False) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(url, autocommit=autocommit, connect_timeout=5)


def ensure_database(url: str) -> bool:
    """Create the database named in the URL if the server lacks it; True if created."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    name = str(info.get("dbname") or "")
    try:
        with psycopg.connect(url, connect_timeout=5):
            return False
    except psycopg.OperationalError as err:
        if not name or "does not exist" not in str(err):
            raise
    admin = psycopg.conninfo.make_conninfo(url, dbname="postgres")
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    logger.info("created database %s", name)
    return True
