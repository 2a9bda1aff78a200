-- DBeaver on connect, from DBeaver's PostgreDataSource.java
SELECT current_schema(),session_user
