"""The floor: the least a claim and a qualify must write, on referflow's own tables, from Flask.

Served by bench/wrk.py exactly like referflow and the echo (same gunicorn settings, the same
claim_qualify.lua, the same database referflow just ran on), it answers the two requests with
the statements no implementation of them can skip, sent straight through the database driver:

- claim: the friend's referral (first claim wins), the code's advocate, the advocate's counter,
  the referral, its history entry and its outbox event, one commit: 6 statements;
- qualify: the referral, the event id recorded once, the referral's update (optimistic lock),
  its history entry and its outbox event, one commit: 5 statements;
- a Stripe delivery: its signature checked (HMAC-SHA256, the timestamp's tolerance), the body
  parsed for the event's id and type, the event recorded once, one commit: 1 statement.

No authentication, schema validation, fraud rules, statistics, signals or identity marks, no
ORM: the gap between referflow and this is what the engine's features and layers cost, and the
gap between this and the echo is what the database and the data model cost (docs/development.md).
SQLite writers take turns as referflow's do (storage/sqlite_writer.py), so both wait the same way.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from flask import Flask, jsonify, request

from referflow.storage.db import make_engine

app = Flask("floor")
ENGINE = make_engine(os.environ["DATABASE_URL"])
PROGRAM = os.environ["FLOOR_PROGRAM_ID"]
STRIPE_SECRET = os.environ["FLOOR_STRIPE_SECRET"].encode()
TOLERANCE = 300  # seconds, Stripe's default
SQLITE = ENGINE.dialect.name == "sqlite"
_LOCAL = threading.local()

_SQL = {
    "friend": "SELECT id FROM referrals WHERE program_id = ? AND friend_external_id = ?",
    "code": "SELECT advocate_id FROM referral_codes WHERE code = ? AND program_id = ?",
    "count": "UPDATE advocates SET referral_count = referral_count + 1 WHERE id = ?",
    "referral": "INSERT INTO referrals (id, program_id, advocate_id, code, friend_external_id, "
                "friend_email, status, reasons, created_at, updated_at, version) "
                "VALUES (?, ?, ?, ?, ?, ?, 'pending', '[]', ?, ?, 1)",
    "history": "INSERT INTO referral_history (referral_id, program_id, at, action, actor_type, "
               "from_status, to_status, reasons, data) VALUES (?, ?, ?, ?, 'api_key', ?, ?, "
               "'[]', ?)",
    "outbox": "INSERT INTO outbox (event_id, program_id, type, payload, created_at) "
              "VALUES (?, ?, ?, ?, ?)",
    "read": "SELECT status, version FROM referrals WHERE id = ? AND program_id = ?",
    "once": "INSERT INTO processed_events (program_id, source, event_id, referral_id, created_at) "
            "VALUES (?, 'qualify', ?, ?, ?) ON CONFLICT (program_id, source, event_id) "
            "DO NOTHING RETURNING id",
    "inbound": "INSERT INTO inbound_events (program_id, provider, event_id, type, payload, "
               "status, attempts, outcome, received_at) VALUES (?, 'stripe', ?, ?, ?, 'pending', "
               "0, '{}', ?) ON CONFLICT (program_id, provider, event_id) DO NOTHING RETURNING id",
    "qualify": "UPDATE referrals SET qualifying_event_id = ?, qualified_amount = ?, "
               "qualified_currency = ?, qualified_at = ?, updated_at = ?, version = version + 1 "
               "WHERE id = ? AND version = ?",
}
SQL = _SQL if SQLITE else {name: text.replace("?", "%s") for name, text in _SQL.items()}


def _connection() -> Any:
    """This thread's own driver connection (kept for the thread's life, like a pool's)."""
    conn = getattr(_LOCAL, "conn", None)
    if conn is None:
        conn = _LOCAL.conn = ENGINE.raw_connection()
    return conn


@contextmanager
def _transaction() -> Iterator[tuple[Any, Any]]:
    """This thread's connection and a cursor; rolled back on an error."""
    conn = _connection()
    cur = conn.cursor()
    try:
        yield conn, cur
    except BaseException:
        conn.rollback()
        raise
    finally:
        cur.close()


def _writing(conn: Any) -> None:
    if SQLITE:  # take the writer turn as referflow's sessions do before their first write
        dbapi = conn.dbapi_connection
        dbapi.takes_turns = True
        dbapi.take_turn()


def _now() -> Any:
    now = datetime.now(UTC)  # stored as referflow's columns store it: naive UTC on SQLite
    return now.replace(tzinfo=None).isoformat(sep=" ") if SQLITE else now


@app.post("/v1/referrals/claim")
def claim() -> Any:
    """Create the friend's referral (or answer the existing one)."""
    body = request.get_json()
    with _transaction() as (conn, cur):
        friend = body["friend"]["external_id"]
        cur.execute(SQL["friend"], (PROGRAM, friend))
        found = cur.fetchone()
        if found is not None:
            conn.rollback()
            return jsonify({"id": found[0]}), 200
        cur.execute(SQL["code"], (body["code"], PROGRAM))
        advocate = cur.fetchone()
        if advocate is None:
            conn.rollback()
            return jsonify({"error": "unknown_code"}), 404
        now, referral_id = _now(), "ref_" + secrets.token_hex(10)
        _writing(conn)
        cur.execute(SQL["count"], (advocate[0],))
        cur.execute(SQL["referral"], (referral_id, PROGRAM, advocate[0], body["code"], friend,
                                      body["friend"]["email"], now, now))
        cur.execute(SQL["history"], (referral_id, PROGRAM, now, "claimed", None, "pending",
                                     json.dumps({"code": body["code"]})))
        payload = {"referral": {"id": referral_id, "status": "pending"}}
        cur.execute(SQL["outbox"], ("evt_" + secrets.token_hex(12), PROGRAM, "referral.created",
                                    json.dumps(payload), now))
        conn.commit()
    return jsonify({"id": referral_id, "status": "pending"}), 201


@app.post("/v1/referrals/qualify")
def qualify() -> Any:
    """Record the qualifying event once and store it on the referral."""
    body = request.get_json()
    event = body["event"]
    with _transaction() as (conn, cur):
        cur.execute(SQL["read"], (body["referral_id"], PROGRAM))
        found = cur.fetchone()
        if found is None:
            conn.rollback()
            return jsonify({"error": "referral_not_found"}), 404
        now = _now()
        _writing(conn)
        cur.execute(SQL["once"], (PROGRAM, event["id"], body["referral_id"], now))
        if cur.fetchone() is None:
            conn.rollback()
            return jsonify({"outcome": "duplicate"}), 200
        cur.execute(SQL["qualify"], (event["id"], event["amount"], event["currency"], now, now,
                                     body["referral_id"], found[1]))
        cur.execute(SQL["history"], (body["referral_id"], PROGRAM, now, "qualified", found[0],
                                     found[0], json.dumps({"event": event})))
        payload = {"referral": {"id": body["referral_id"], "status": found[0]}}
        cur.execute(SQL["outbox"], ("evt_" + secrets.token_hex(12), PROGRAM,
                                    "referral.qualified", json.dumps(payload), now))
        conn.commit()
    return jsonify({"id": body["referral_id"], "outcome": "qualified"}), 200


@app.post("/v1/ingress/<program_id>/stripe")
def ingress(program_id: str) -> Any:
    """Check a Stripe delivery's signature and record its event once."""
    raw = request.get_data()
    fields = dict(part.split("=", 1) for part in
                  request.headers.get("Stripe-Signature", "").split(",") if "=" in part)
    expected = hmac.new(STRIPE_SECRET, fields.get("t", "").encode() + b"." + raw,
                        hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, fields.get("v1", "")) \
            or abs(time.time() - int(fields.get("t", "0"))) > TOLERANCE:
        return jsonify({"error": "bad_signature"}), 400
    event = json.loads(raw)
    with _transaction() as (conn, cur):
        _writing(conn)
        cur.execute(SQL["inbound"], (program_id, event["id"], event["type"], raw.decode(),
                                     _now()))
        recorded = cur.fetchone() is not None
        conn.commit()
    return jsonify({"received": 1, "duplicates": 0 if recorded else 1}), 200
