"""Known customers (never eligible as referred friends) and code deactivation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Column, Integer, String, exists, func, insert, literal, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from referflow.actions import people
from referflow.actions.bulk import BATCH_SIZE, Advance, BulkImport, Record, Report, Stage, chunks
from referflow.actions.common import ProgramContext
from referflow.actions.import_stats import add_known_customers
from referflow.actions.offers import disable_offer
from referflow.domain.codes import normalise_code
from referflow.domain.imports import BadRow, check_customer
from referflow.domain.timeutil import utcnow
from referflow.errors import NotFound
from referflow.storage.models import KnownCustomer, ReferralCode
from referflow.storage.types import UTCDateTime


def import_customers(session: Session, ctx: ProgramContext, customers: list[dict[str, Any]],
                     source: str = "import") -> int:
    """Record existing customers by external id and/or keyed email hash; return how many are new."""
    added = 0
    for person in customers:
        external_id = person.get("external_id")
        email_key = people.email_key(ctx, person.get("email"))
        if _is_known(session, ctx, external_id, email_key):
            continue
        session.add(KnownCustomer(program_id=ctx.id, external_id=external_id,
                                  email_key=email_key, source=source))
        session.flush()
        added += 1
    session.commit()
    return added


def _is_known(session: Session, ctx: ProgramContext, external_id: str | None,
              email_key: str | None) -> bool:
    matches = []
    if external_id:
        matches.append(KnownCustomer.external_id == external_id)
    if email_key:
        matches.append(KnownCustomer.email_key == email_key)
    return session.scalar(select(KnownCustomer.id).where(
        KnownCustomer.program_id == ctx.id, or_(*matches)).limit(1)) is not None


def deactivate_code(session: Session, ctx: ProgramContext, raw_code: str) -> ReferralCode:
    """Stop a code from attributing new referrals (claims with it are rejected: inactive_code)."""
    code = session.get(ReferralCode, normalise_code(raw_code)[:32])
    if code is None or code.program_id != ctx.id:
        raise NotFound("unknown referral code", code="unknown_code")
    code.active = False
    disable_offer(session, code)  # its friend offer's discount is switched off in the store
    session.commit()
    return code


class CustomerImport(BulkImport):
    """Import a file of existing customers: ``check`` it whole, then ``write`` it in batches.

    A row is new unless a known customer of the program has its external id or its email
    (the rule of ``import_customers``); rows of the file that repeat an earlier row's external
    id or email are the same customer, and the first one counts. Nothing is written while any
    row is bad (actions/bulk.py).
    """

    def __init__(self, engine: Engine, ctx: ProgramContext, source: str = "import"):
        super().__init__(engine)
        self.ctx, self.source = ctx, source
        self.stage = Stage(self.conn, "import_customers_stage", [
            Column("seq", Integer, primary_key=True, autoincrement=False),
            Column("line", Integer), Column("external_id", String(200)),
            Column("email_key", String(64))])

    def check(self, records: Iterator[Record], advance: Advance) -> Report:
        """Read and check every record, staging the good ones; return the report so far."""
        assert self.stage is not None
        for chunk in chunks(records):
            rows = [row for line, fields, problem in chunk
                    if (row := self._checked(line, fields, problem)) is not None]
            if not self.report.problems:
                self.stage.add([(self.stage.size + n, *row) for n, row in enumerate(rows)])
            self.report.read += len(chunk)
            advance(len(chunk))
        if not self.report.problems:
            self.stage.ready()
            self.report.repeated = self._drop_repeats()
        return self.report

    def _checked(self, line: int, fields: dict[str, Any] | None,
                 problem: str | None) -> tuple[int, str | None, str | None] | None:
        try:
            if fields is None:
                raise BadRow(problem or "unreadable")
            person = check_customer(fields)
        except BadRow as exc:
            self.problem(line, exc)
            return None
        return line, person.external_id, people.email_key(self.ctx, person.email)

    def _drop_repeats(self) -> int:
        """Drop the rows that repeat an earlier row's external id, then email (one sort each)."""
        assert self.stage is not None
        table, dropped = self.stage.table, 0
        for name in ("external_id", "email_key"):
            ranked = select(table.c.seq, func.row_number().over(
                partition_by=table.c[name], order_by=table.c.seq).label("n")).where(
                table.c[name].is_not(None)).subquery()
            dropped += self.conn.execute(table.delete().where(table.c.seq.in_(
                select(ranked.c.seq).where(ranked.c.n > 1)))).rowcount
        self.conn.commit()
        return dropped

    def write(self, advance: Advance, batch_size: int = BATCH_SIZE) -> Report:
        """Write the staged customers that are new, one transaction per batch."""
        assert self.stage is not None and not self.report.problems
        staged, now = self.stage.table, utcnow()
        new = select(literal(self.ctx.id), staged.c.external_id, staged.c.email_key,
                     literal(self.source), literal(now, UTCDateTime()))
        for name in ("external_id", "email_key"):  # NULL matches nothing: anti-joins
            new = new.where(~exists().where(KnownCustomer.program_id == self.ctx.id,
                                            getattr(KnownCustomer, name) == staged.c[name]))
        columns = ["program_id", "external_id", "email_key", "source", "created_at"]
        for batch, count in self.stage.batches(batch_size):
            added = self.conn.execute(
                insert(KnownCustomer).from_select(columns, new.where(batch))).rowcount
            add_known_customers(self.conn, self.ctx.id, self.ctx.config.timezone, now, added)
            self.conn.commit()  # the batch and its statistics together
            self.report.added += added
            advance(count)
        self.report.existing = self.report.read - self.report.repeated - self.report.added
        if self.conn.dialect.name == "postgresql":  # fresh planner statistics after a big load
            self.conn.exec_driver_sql("ANALYZE known_customers")
            self.conn.commit()
        return self.report
