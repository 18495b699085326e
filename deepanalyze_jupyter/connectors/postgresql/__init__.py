"""PostgreSQL through psycopg 3: pooled connections, COPY-fast reads, typed frames."""

from __future__ import annotations

from .connector import PostgresConnector

__all__ = ["PostgresConnector"]
