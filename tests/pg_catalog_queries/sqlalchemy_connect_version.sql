-- SQLAlchemy 2.1 postgresql+psycopg, query 1
select pg_catalog.version()
