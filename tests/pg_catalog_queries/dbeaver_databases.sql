-- DBeaver (pgJDBC) on connect, from DBeaver's PostgreDataSource.java: the database list
-- params: ["shop"]
SELECT db.oid,db.* FROM pg_catalog.pg_database db WHERE 1 = 1 AND datallowconn AND NOT datistemplate  OR db.datname =$1
ORDER BY db.datname
