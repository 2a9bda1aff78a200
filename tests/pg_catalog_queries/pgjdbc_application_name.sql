-- pgJDBC (DBeaver's driver) on connect
SET application_name = 'DBeaver 24.0.0 - Main <shop>'
