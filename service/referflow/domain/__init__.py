"""Pure rules of referflow: no Flask, SQLAlchemy, requests or rq in here."""
