-- pgJDBC (DBeaver's driver) on connect
SET extra_float_digits = 3
