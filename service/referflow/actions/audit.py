"""The audit trail export: every referral history entry of a program, as JSON lines or CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from referflow.actions.common import ProgramContext
from referflow.domain.timeutil import to_rfc3339
from referflow.storage.models import Referral, ReferralHistory

COLUMNS = ("at", "referral_id", "advocate_id", "code", "friend_external_id", "action",
           "actor_type", "actor_id", "from_status", "to_status", "reason_codes",
           "config_version", "data")
BATCH = 1000


def audit_rows(session: Session, ctx: ProgramContext, since: datetime | None,
               until: datetime | None) -> Iterator[dict[str, Any]]:
    """Yield history entries with their referral's identifiers, in order, in batches.

    Each batch is its own short read transaction (keyset pagination on the history id), so a
    long or abandoned export never holds a transaction open.
    """
    h = ReferralHistory
    columns = (h.id, h.at, h.referral_id, Referral.advocate_id, Referral.code,
               Referral.friend_external_id, h.action, h.actor_type, h.actor_id, h.from_status,
               h.to_status, h.reasons, h.config_version, h.data)
    last_id = 0
    while True:
        query = (select(*columns).join(Referral, Referral.id == h.referral_id)
                 .where(h.program_id == ctx.id, h.id > last_id).order_by(h.id).limit(BATCH))
        if since:
            query = query.where(h.at >= since)
        if until:
            query = query.where(h.at < until)
        rows = session.execute(query).all()
        session.rollback()  # end the read transaction before handing rows out
        for row in rows:
            yield {"at": to_rfc3339(row.at), "referral_id": row.referral_id,
                   "advocate_id": row.advocate_id, "code": row.code,
                   "friend_external_id": row.friend_external_id, "action": row.action,
                   "actor_type": row.actor_type, "actor_id": row.actor_id,
                   "from_status": row.from_status, "to_status": row.to_status,
                   "reasons": row.reasons, "config_version": row.config_version,
                   "data": row.data}
        if len(rows) < BATCH:
            return
        last_id = rows[-1].id


def as_jsonl(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    """Render rows as JSON lines."""
    for row in rows:
        yield json.dumps(row, sort_keys=True) + "\n"


def as_csv(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    """Render rows as CSV with a header; reasons as codes, data as JSON."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([
            row["at"], row["referral_id"], row["advocate_id"], row["code"],
            row["friend_external_id"], row["action"], row["actor_type"], row["actor_id"],
            row["from_status"], row["to_status"], " ".join(r["code"] for r in row["reasons"]),
            row["config_version"], json.dumps(row["data"], sort_keys=True)])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.getvalue():
        yield buffer.getvalue()
