"""The oids of PostgreSQL's built-in types that the connector reads, from psycopg's registry."""

from __future__ import annotations

from psycopg.postgres import types

__all__ = [
    "BOOL",
    "BPCHAR",
    "BYTEA",
    "CHAR",
    "DATE",
    "FLOAT4",
    "FLOAT8",
    "INT2",
    "INT4",
    "INT8",
    "INTERVAL",
    "MONEY",
    "NAME",
    "NUMERIC",
    "OID",
    "TEXT",
    "TIME",
    "TIMESTAMP",
    "TIMESTAMPTZ",
    "TIMETZ",
    "UNKNOWN",
    "UUID",
    "VARCHAR",
    "XML",
]

INT2, INT4, INT8, OID = (types[name].oid for name in ("int2", "int4", "int8", "oid"))
FLOAT4, FLOAT8, NUMERIC = (types[name].oid for name in ("float4", "float8", "numeric"))
BOOL = types["bool"].oid
BYTEA = types["bytea"].oid
DATE, TIME, TIMETZ, TIMESTAMP, TIMESTAMPTZ, INTERVAL = (
    types[name].oid for name in ("date", "time", "timetz", "timestamp", "timestamptz", "interval")
)
TEXT, VARCHAR, BPCHAR, NAME, CHAR = (
    types[name].oid for name in ("text", "varchar", "bpchar", "name", '"char"')
)
UUID, XML, MONEY = (types[name].oid for name in ("uuid", "xml", "money"))
UNKNOWN = 705  # string literals of no given type; not in psycopg's registry
