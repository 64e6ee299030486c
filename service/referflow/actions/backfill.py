"""Backfill referrals (and their advocates and codes) from another referral tool's export.

The file is checked whole before anything is written (actions/bulk.py): each row by
domain/imports.py, then the rows together and against the database (a friend twice, one
advocate with two emails, a code that belongs to someone else). Then advocates, codes and
referrals are written with set-based ``INSERT ... SELECT`` (actions/backfill_writes.py), in
batches of whole advocates, one transaction each. Keyed on the friend's
external id (unique per program): a friend who already has a referral is left as it is, so
running the same file again adds nothing.

Imported referrals get one history entry (action ``imported``, actor ``import``) and the keyed
email hashes the API computes. They emit no events (no outbox rows, so no webhooks and no
provider sync) and plan no rewards; a ``qualified`` one is held, and referflow approves it
when its hold ends, as it approves its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Integer,
    String,
    Text,
    exists,
    func,
    insert,
    select,
    true,
)
from sqlalchemy.engine import Engine
from sqlalchemy.sql.expression import ColumnElement

from referflow.actions import backfill_writes as writes
from referflow.actions import people
from referflow.actions.bulk import BATCH_SIZE, Advance, BulkImport, Record, Report, Stage, chunks
from referflow.actions.common import ProgramContext
from referflow.actions.import_stats import ReferralStats
from referflow.domain.codes import new_ids, new_referral_codes
from referflow.domain.imports import BadRow, ImportRules, ReferralRow, check_referral
from referflow.domain.timeutil import utcnow
from referflow.storage.models import Advocate, ReferralCode
from referflow.storage.types import UTCDateTime

CHUNK = 5_000  # ids per IN (...) list: generated codes checked, advocates' counters moved
STAGED = ("line", "advocate_external_id", "advocate_email", "advocate_email_key", "advocate_name",
          "code", "friend_external_id", "friend_email", "friend_email_key", "status", "created_at",
          "qualified_at", "qualified_amount", "qualified_currency", "qualifying_event_id",
          "hold_until", "approved_at", "advocate_reward", "friend_reward", "reason", "reasons",
          "history", "referral_id", "known")  # known: the friend had a referral (set true per batch)


def _referral_columns() -> list[Column[Any]]:
    text = {"advocate_external_id": 200, "advocate_email": 320, "advocate_email_key": 64,
            "advocate_name": 200, "code": 32, "friend_external_id": 200, "friend_email": 320,
            "friend_email_key": 64, "status": 16, "qualified_currency": 3, "reason": 40,
            "qualifying_event_id": 200, "referral_id": 32}
    times = ("created_at", "qualified_at", "hold_until", "approved_at")
    money = ("qualified_amount", "advocate_reward", "friend_reward")
    columns: list[Column[Any]] = [Column("seq", Integer, primary_key=True, autoincrement=False)]
    for name in STAGED:
        kind: Any = (Integer if name == "line" else Boolean if name == "known"
                     else String(text[name]) if name in text else UTCDateTime() if name in times
                     else BigInteger if name in money else Text)
        columns.append(Column(name, kind))
    return columns


class ReferralImport(BulkImport):
    """Import a file of referrals into one program: ``check``, ``write_advocates``, ``write``."""

    def __init__(self, engine: Engine, ctx: ProgramContext, file_name: str, actor_id: str = "cli"):
        super().__init__(engine)
        self.ctx, self.actor_id = ctx, actor_id
        self.rules = ImportRules(ctx.config.currency, ctx.config.hold_days, utcnow())
        self._file = json.dumps(file_name[-200:])
        self._email_keys: dict[str, str | None] = {}
        self.stats = ReferralStats(ctx.id, ctx.config.timezone, None)
        self.stage = Stage(self.conn, "import_referrals_stage", _referral_columns(), indexes=[
            ("friend_external_id", "seq"), ("advocate_external_id", "seq"), ("code",)])

    # ---- check --------------------------------------------------------------------------------

    def check(self, records: Iterator[Record], advance: Advance) -> Report:
        """Read and check every record, then the rows together; stage them while all are good."""
        stage = self.stage
        assert stage is not None
        for chunk in chunks(records):
            rows = [row for line, fields, problem in chunk
                    if (row := self._checked(line, fields, problem)) is not None]
            # Staged even once a row is bad: the checks across rows then report every problem.
            ids = new_ids("ref", len(rows))
            stage.add([(stage.size + n, *row, ids[n], False) for n, row in enumerate(rows)])
            self.report.read += len(chunk)
            advance(len(chunk))
        stage.ready()
        self._check_together()
        self.report.problems.listed.sort()
        return self.report

    def _checked(self, line: int, fields: dict[str, Any] | None,
                 problem: str | None) -> tuple[Any, ...] | None:
        try:
            if fields is None:
                raise BadRow(problem or "unreadable")
            row = check_referral(fields, self.rules)
        except BadRow as exc:
            self.problem(line, exc)
            return None
        return self._staged(line, row)

    def _staged(self, line: int, row: ReferralRow) -> tuple[Any, ...]:
        reasons = json.dumps(row.reasons()) if row.reason else None
        history = f'{{"file": {self._file}, "line": {line}, "imported_as": "{row.imported_as}"}}'
        friend_key = people.email_key(self.ctx, row.friend_email)
        return (line, row.advocate_external_id, row.advocate_email, self._key(row.advocate_email),
                row.advocate_name, row.code, row.friend_external_id, row.friend_email, friend_key,
                row.status.value, row.created_at, row.qualified_at, row.qualified_amount,
                row.currency, row.qualifying_event_id, row.hold_until, row.approved_at,
                row.advocate_reward, row.friend_reward, row.reason, reasons, history)

    def _key(self, email: str | None) -> str | None:
        """The keyed hash of an advocate's email, as the API computes it (advocates repeat:
        remembered; a friend's email is hashed once, so it is not kept)."""
        if email is None:
            return None
        key = self._email_keys.get(email)
        if key is None:
            if len(self._email_keys) > 100_000:
                self._email_keys.clear()
            key = self._email_keys[email] = people.email_key(self.ctx, email)
        return key

    def _check_together(self) -> None:
        """Find the rows that disagree with an earlier row, or with the database."""
        self._repeats("friend_external_id", None, "friend_external_id: the friend is also on line {}")
        self._repeats("advocate_external_id", "advocate_email_key",
                      "advocate_email: line {} gives the same advocate another email")
        self._repeats("advocate_external_id", "advocate_name",
                      "advocate_name: line {} gives the same advocate another name")
        self._repeats("code", "advocate_external_id", "code: line {} gives it to another advocate")
        assert self.stage is not None
        s = self.stage.table
        for (line,) in self.conn.execute(select(s.c.line).where(self._code_taken(s))):
            self.problem(line, "code: it belongs to another advocate")
        self.conn.commit()

    def _repeats(self, group: str, value: str | None, message: str) -> None:
        """Report the rows of a ``group`` whose ``value`` differs from the group's first one
        (``value`` None: every row after the group's first). Aggregates find the few groups
        that clash; only their rows are read."""
        assert self.stage is not None
        s = self.stage.table
        given = s.c[value].is_not(None) if value else true()
        kinds = func.count(func.distinct(s.c[value])) if value else func.count()
        clashing = (select(s.c[group]).where(s.c[group].is_not(None), given)
                    .group_by(s.c[group]).having(kinds > 1))
        rows = (select(s.c[group], s.c.line, s.c[value] if value else s.c.seq)
                .where(s.c[group].in_(clashing), given).order_by(s.c[group], s.c.seq))
        current: Any = object()
        for key, line, found in self.conn.execute(rows):
            if key != current:
                current, first_line, first = key, line, found
            elif value is None or found != first:
                self.problem(line, message.format(first_line))

    def _code_taken(self, s: Any) -> ColumnElement[bool]:
        owner = select(Advocate.external_id).join(ReferralCode,
                                                  ReferralCode.advocate_id == Advocate.id)
        return exists().where(ReferralCode.code == s.c.code) & ~exists(owner.where(
            ReferralCode.code == s.c.code, ReferralCode.program_id == self.ctx.id,
            Advocate.external_id == s.c.advocate_external_id))

    # ---- write --------------------------------------------------------------------------------

    def write(self, advance: Advance, batch_size: int = BATCH_SIZE) -> Report:
        """Write the staged referrals, with their advocates and codes, in batches of whole
        advocates (one transaction each); a friend who has a referral already is skipped."""
        assert self.stage is not None and not self.report.problems
        self.report.extra = {"advocates_added": 0, "codes_added": 0}
        postgresql = self.conn.dialect.name == "postgresql"
        self.stats.oldest = self.conn.scalar(select(func.min(self.stage.c.created_at)))
        for first, last, rows in self._batches(batch_size):
            self.index_joins()
            self._write_batch(writes.Batch(
                self.ctx.id, self.ctx.program.config_version, self.actor_id, self.stage.table,
                self.stage.c.advocate_external_id.between(first, last), utcnow(), postgresql))
            self.conn.commit()  # the batch and its statistics together
            advance(rows)
        self.report.existing = self.report.read - self.report.added
        if postgresql:  # fresh planner statistics after a big load
            for table in ("referrals", "referral_history", "advocates", "referral_codes"):
                self.conn.exec_driver_sql(f"ANALYZE {table}")
            self.conn.commit()
        return self.report

    def _batches(self, batch_size: int) -> Iterator[tuple[str, str, int]]:
        """Yield (first advocate, last advocate, rows): about ``batch_size`` rows each, cut
        between advocates, in the database's own order of the external ids."""
        assert self.stage is not None
        ext = self.stage.c.advocate_external_id
        first, last, rows = None, "", 0
        for external_id, count in self.conn.execute(
                select(ext, func.count()).group_by(ext).order_by(ext)).all():
            first, last, rows = first or external_id, external_id, rows + count
            if rows >= batch_size:
                yield first, last, rows
                first, rows = None, 0
        if first is not None:
            yield first, last, rows

    def _write_batch(self, batch: writes.Batch) -> None:
        self.conn.execute(writes.known_friends(batch))
        enrolled = list(self.conn.scalars(writes.enrolled_advocates(batch)))
        new = self.conn.execute(writes.new_advocates(batch)).all()
        if new:
            ids = new_ids("adv", len(new))
            self.conn.execute(insert(Advocate), [
                {"id": ids[n], "program_id": self.ctx.id, "external_id": external_id,
                 "email": email, "email_key": key, "name": name, "flagged": False,
                 "created_at": first, "referral_count": referrals, "approved_count": approved}
                for n, (external_id, email, key, name, first, referrals, approved)
                in enumerate(new)])
        codes = self.conn.execute(writes.file_codes(batch)).rowcount
        while codeless := list(self.conn.scalars(writes.codeless_advocates(batch))):
            for start in range(0, len(codeless), CHUNK):  # again only if a drawn code was taken
                codes += self._add_codes(codeless[start:start + CHUNK], batch.now)
        added = self.conn.execute(writes.referrals(batch)).rowcount
        self.report.added += added
        self.fresh_statistics(added, ("referrals", "advocates", "referral_codes"))
        self.conn.execute(writes.history(batch))
        self.conn.execute(writes.signals(batch))
        for start in range(0, len(enrolled), CHUNK):
            self.conn.execute(writes.counters(batch, enrolled[start:start + CHUNK]))
        self.stats.add_batch(self.conn, batch, [(row[4], None) for row in new])
        self.report.extra["advocates_added"] += len(new)
        self.report.extra["codes_added"] += codes

    def _add_codes(self, advocate_ids: list[str], now: datetime) -> int:
        codes = new_referral_codes(len(advocate_ids))
        taken = set(self.conn.scalars(select(ReferralCode.code).where(ReferralCode.code.in_(codes))))
        rows = [{"code": code, "program_id": self.ctx.id, "advocate_id": advocate_id,
                 "vanity": False, "active": True, "created_at": now}
                for advocate_id, code in zip(advocate_ids, codes, strict=True) if code not in taken]
        if rows:
            self.conn.execute(insert(ReferralCode), rows)
        return len(rows)
