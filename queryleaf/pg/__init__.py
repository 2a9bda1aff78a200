"""The PostgreSQL wire-protocol server: psql, psycopg, JDBC/ODBC tools and BI dashboards talk to
queryleaf as to a PostgreSQL server (``queryleaf serve --pg``; docs/connectors.md).

``server`` accepts connections (a thread each), ``messages`` frames the protocol's messages,
``auth`` checks SCRAM-SHA-256 passwords, ``session`` runs one connection's statements and
portals on its own QueryLeaf, ``rows`` shapes a statement's outcome (typed columns, rows
streamed), ``types`` maps column types to PostgreSQL types and values to their wire forms,
``errors`` maps queryleaf's errors to SQLSTATE codes and ``catalog`` answers the PostgreSQL-only
statements (pg_catalog, SET, SHOW...).
"""
