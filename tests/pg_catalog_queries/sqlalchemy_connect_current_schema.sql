-- SQLAlchemy 2.1 postgresql+psycopg, query 2
select current_schema()
