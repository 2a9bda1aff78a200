"""The PostgreSQL wire-protocol server: psql, psycopg, SQLAlchemy and BI tools speak to queryleaf."""
