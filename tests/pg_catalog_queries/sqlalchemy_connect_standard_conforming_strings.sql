-- SQLAlchemy 2.1 postgresql+psycopg, query 4
show standard_conforming_strings
