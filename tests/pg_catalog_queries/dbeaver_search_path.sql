-- DBeaver on connect, from DBeaver's PostgreDatabase.java: the search path
SELECT reset_val FROM pg_settings WHERE name = 'search_path'
