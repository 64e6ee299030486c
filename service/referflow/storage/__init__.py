"""Persistence: SQLAlchemy tables, Alembic migrations and repository queries."""
