"""Bulk imports: read a file's records with their line numbers, stage the checked rows in a
temporary table, and write them in set-based batches.

How an import stays whole (docs/referrals.md, "Importing"): the whole file is read and checked
first, into a temporary table on one connection, and nothing is written while any row is bad;
then the rows are written in batches of ``batch_size``, one transaction each, every batch
skipping what is already there. A run that is interrupted while writing has written whole
batches only, and running it again writes the rest (the import is idempotent).

Staging uses PostgreSQL's COPY (psycopg) and SQLite's executemany; the writes are
``INSERT ... SELECT ... WHERE NOT EXISTS`` against the existing indexes.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from types import TracebackType
from typing import Any, Self, TextIO

from sqlalchemy import Column, Index, MetaData, Table
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.expression import ColumnElement

from referflow.domain.imports import BadRow

STAGE_CHUNK = 20_000  # rows checked and staged per round trip
BATCH_SIZE = 50_000  # rows written per transaction
SQLITE_CACHE_KIB = 512 * 1024  # the import connection's page cache (memory, not a file size)
PG_TEMP_BUFFERS, PG_WORK_MEM = "512MB", "128MB"  # this session's, while it imports
MAX_LISTED_ERRORS = 100  # a wrong file lists its first problems; every one is counted

Record = tuple[int, dict[str, Any] | None, str | None]  # line, fields (or None), problem
Advance = Callable[[int], None]


def csv_records(stream: TextIO) -> tuple[list[str], Iterator[Record]]:
    """Return a CSV file's header and its records (each with the line it starts on)."""
    reader = csv.reader(stream)
    header = [name.strip() for name in next(reader, [])]
    return header, _csv_rows(reader, header)


def _csv_rows(reader: Any, header: list[str]) -> Iterator[Record]:
    width = len(header)
    line = reader.line_num + 1
    for values in reader:
        if not values or values == [""]:
            line = reader.line_num + 1
            continue
        if len(values) != width:
            yield line, None, f"{len(values)} fields where the header has {width}"
        else:
            yield line, dict(zip(header, values, strict=True)), None
        line = reader.line_num + 1


def jsonl_records(stream: TextIO) -> Iterator[Record]:
    """Return a JSON Lines file's records: one JSON object a line (blank lines are skipped)."""
    for line, text in enumerate(stream, 1):
        if not text.strip():
            continue
        try:
            fields = json.loads(text)
        except ValueError:
            yield line, None, "not valid JSON"
            continue
        if isinstance(fields, dict):
            yield line, fields, None
        else:
            yield line, None, "not a JSON object"


@dataclass
class Problems:
    """Bad rows by line number: the first ``MAX_LISTED_ERRORS`` listed, all counted."""

    listed: list[tuple[int, str]] = field(default_factory=list)
    count: int = 0

    def add(self, line: int, message: str) -> None:
        """Count one bad row, listing it while the list is short."""
        self.count += 1
        if len(self.listed) < MAX_LISTED_ERRORS:
            self.listed.append((line, message))

    def __bool__(self) -> bool:
        return self.count > 0


@dataclass
class Report:
    """What an import did: rows read, rows written, rows already there, repeats in the file."""

    read: int = 0
    added: int = 0
    existing: int = 0
    repeated: int = 0
    problems: Problems = field(default_factory=Problems)
    extra: dict[str, int] = field(default_factory=dict)


class Stage:
    """A temporary table on one connection, filled by COPY (PostgreSQL) or executemany."""

    def __init__(self, conn: Connection, name: str, columns: Sequence[Column[Any]],
                 indexes: Sequence[tuple[str, ...]] = ()):
        self.conn = conn
        self.table = Table(name, MetaData(), *columns, prefixes=["TEMPORARY"])
        self._insert = str(self.table.insert().compile(dialect=conn.dialect))  # positional
        self.names = [c.name for c in columns]
        self.indexes = indexes
        self.size = 0
        self._processors = [(n, p) for n, c in enumerate(columns)
                            if (p := c.type.bind_processor(conn.dialect)) is not None]
        self.table.drop(conn, checkfirst=True)
        self.table.create(conn)
        conn.commit()

    @property
    def c(self) -> Any:
        """Return the table's columns."""
        return self.table.c

    def add(self, rows: list[tuple[Any, ...]]) -> None:
        """Append rows (tuples in column order)."""
        if not rows:
            return
        if self.conn.dialect.name == "postgresql":
            cursor = self.conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            with cursor, cursor.copy(f"COPY {self.table.name} ({', '.join(self.names)}) "
                                     "FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:  # the driver's executemany: the types' bind processing, without Core's per-row work
            if self._processors:
                rows = [self._processed(row) for row in rows]
            self.conn.exec_driver_sql(self._insert, rows)
        self.size += len(rows)

    def _processed(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        values = list(row)
        for n, process in self._processors:
            values[n] = process(values[n])
        return tuple(values)

    def ready(self) -> None:
        """Index the staged rows for the set-based checks and writes; commit."""
        for number, columns in enumerate(self.indexes):
            Index(f"{self.table.name}_{number}", *(self.table.c[n] for n in columns)).create(self.conn)
        if self.conn.dialect.name == "postgresql":
            self.conn.exec_driver_sql(f"ANALYZE {self.table.name}")
        self.conn.commit()

    def batches(self, batch_size: int) -> Iterator[tuple[ColumnElement[bool], int]]:
        """Yield (a condition on ``seq`` selecting one batch, the batch's row count)."""
        for start in range(0, self.size, batch_size):
            end = min(start + batch_size, self.size)
            yield (self.table.c.seq >= start) & (self.table.c.seq < end), end - start

    def drop(self) -> None:
        """Drop the table (the connection is about to go back to the pool)."""
        self.conn.rollback()
        self.table.drop(self.conn, checkfirst=True)
        self.conn.commit()


def chunks(records: Iterator[Record], size: int = STAGE_CHUNK) -> Iterator[list[Record]]:
    """Yield the records in lists of ``size``."""
    while chunk := list(islice(records, size)):
        yield chunk


class BulkImport:
    """One import on one connection: ``check`` the file, then ``write`` it (a context manager)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        # preserve_rowcount: SQLAlchemy keeps an INSERT's row count only when asked
        self.conn = engine.connect().execution_options(preserve_rowcount=True)
        if self.conn.dialect.name == "sqlite":
            # Batches insert into several indexes keyed by random ids and hashes: with SQLite's
            # default 2 MB page cache every insert would read its pages back from the file.
            self.conn.exec_driver_sql(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
            # The staged rows live in the temp schema, which has a page cache of its own
            # (2 MB): every check and batch would read a big stage back from its file.
            self.conn.exec_driver_sql(f"PRAGMA temp.cache_size=-{SQLITE_CACHE_KIB}")
        else:
            self._postgres_session()
        self.report = Report()
        self.stage: Stage | None = None
        self._grown = self._analyzed = 0  # rows this import added; how many when last analyzed

    def _postgres_session(self) -> None:
        # The staged rows live in a temporary table, read in this backend's own buffers:
        # PostgreSQL's default (8 MB) would read a million-row stage back from disk at every
        # check and batch. It can be set only before the session's first temporary table.
        try:
            self.conn.exec_driver_sql(f"SET temp_buffers = '{PG_TEMP_BUFFERS}'")
        except DBAPIError:
            self.conn.rollback()  # a pooled connection that used one already: keep its size
        self.conn.exec_driver_sql(f"SET work_mem = '{PG_WORK_MEM}'")  # the checks' sorts
        self.conn.exec_driver_sql(f"SET maintenance_work_mem = '{PG_WORK_MEM}'")  # stage indexes
        # Batch statements look expensive to the planner, whose JIT would then spend most of a
        # second compiling each one; they are plain index work.
        self.conn.exec_driver_sql("SET jit = off")
        self.conn.commit()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if self.stage is not None:
                self.stage.drop()
        finally:
            if self.conn.dialect.name == "sqlite":
                self.conn.exec_driver_sql("PRAGMA cache_size=-2000")  # SQLite's default, for the pool
                self.conn.exec_driver_sql("PRAGMA temp.cache_size=-2000")
            self.conn.close()

    def fresh_statistics(self, added: int, tables: Sequence[str]) -> None:
        """ANALYZE the tables a batch writes into each time this import has doubled what it
        wrote since the last time (PostgreSQL). Batches join the rows they wrote: planned
        from statistics of a table still near empty, a join scans it once per row."""
        self._grown += added
        if self.conn.dialect.name != "postgresql" or self._grown <= 2 * self._analyzed:
            return
        for table in tables:  # in the batch's transaction: its own new rows are sampled
            self.conn.exec_driver_sql(f"ANALYZE {table}")
        self._analyzed = self._grown

    def index_joins(self) -> None:
        """Have this transaction's joins probe an index for each staged row (PostgreSQL).

        A batch joins its staged rows (tens of thousands) with live tables of up to millions.
        A hash or merge join reads the whole live table at every batch, so an import would
        read it once a batch (quadratic in the file) through a buffer pool that its inserts
        need for the tables' indexes."""
        if self.conn.dialect.name == "postgresql":
            self.conn.exec_driver_sql("SET LOCAL enable_hashjoin = off")
            self.conn.exec_driver_sql("SET LOCAL enable_mergejoin = off")

    def problem(self, line: int, error: BadRow | str) -> None:
        """Record a bad row."""
        self.report.problems.add(line, str(error))
