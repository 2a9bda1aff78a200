"""The ``queryleaf://`` SQLAlchemy dialect (dialect.py), registered by the package's entry point
``sqlalchemy.dialects: queryleaf``; see docs/connectors.md."""
