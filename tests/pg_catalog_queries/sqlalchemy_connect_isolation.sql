-- SQLAlchemy 2.1 postgresql+psycopg, query 3
show transaction isolation level
