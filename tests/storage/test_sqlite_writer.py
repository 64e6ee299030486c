"""SQLite writers take turns (storage/sqlite_writer.py): a session's transaction holds its turn from
its first write until it ends; reads and a bulk connection take none; turns pass between threads
and processes, and every write lands."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

from sqlalchemy import text

from referflow.storage.db import Database
from referflow.storage.sqlite_writer import WriterConnection, turns_of


def _database(tmp_path: Path) -> Database:
    db = Database(f"sqlite:///{tmp_path}/turns.db")
    with db.engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, who TEXT)"))
    return db


def _dbapi(session: object) -> WriterConnection:
    connection = session.connection().connection.dbapi_connection  # type: ignore[attr-defined]
    assert isinstance(connection, WriterConnection)
    return connection


def test_a_session_holds_the_turn_from_its_first_write_until_its_transaction_ends(
        tmp_path: Path) -> None:
    db = _database(tmp_path)
    turns = turns_of(f"{tmp_path}/turns.db")
    with db.session() as session:
        session.execute(text("SELECT count(*) FROM t"))
        assert not _dbapi(session).holding and not turns.lock.locked()  # a read takes none
        session.execute(text("INSERT INTO t (who) VALUES ('a')"))
        assert _dbapi(session).holding and turns.lock.locked()
        session.commit()
        assert not turns.lock.locked()
        session.execute(text("INSERT INTO t (who) VALUES ('b')"))
        assert turns.lock.locked()
        session.rollback()  # a rollback ends the turn too
        assert not turns.lock.locked()
        session.execute(text("INSERT INTO t (who) VALUES ('c')"))
    assert not turns.lock.locked()  # closed without commit: rolled back, turn given back
    with db.engine.connect() as conn:  # a bulk connection (imports) takes no turn
        conn.execute(text("INSERT INTO t (who) VALUES ('d')"))
        assert not turns.lock.locked()
        conn.commit()
        assert conn.execute(text("SELECT group_concat(who) FROM t")).scalar() == "a,d"
    db.dispose()


def _write(url: str, who: str, count: int) -> None:
    db = Database(url)
    for _ in range(count):
        with db.session() as session:
            session.execute(text("SELECT count(*) FROM t"))
            session.execute(text("INSERT INTO t (who) VALUES (:who)"), {"who": who})
            session.commit()
    db.dispose()


def test_turns_pass_between_threads_and_processes_and_every_write_lands(tmp_path: Path) -> None:
    db = _database(tmp_path)
    url = f"sqlite:///{tmp_path}/turns.db"
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_write, args=(url, f"p{n}", 40)) for n in range(2)]
    threads = [threading.Thread(target=_write, args=(url, f"t{n}", 40)) for n in range(4)]
    for worker in (*processes, *threads):
        worker.start()
    for worker in (*processes, *threads):
        worker.join(timeout=120)
    assert all(p.exitcode == 0 for p in processes)
    with db.engine.connect() as conn:
        counts = dict(conn.execute(text("SELECT who, count(*) FROM t GROUP BY who")).all())
    assert counts == {**{f"p{n}": 40 for n in range(2)}, **{f"t{n}": 40 for n in range(4)}}
    db.dispose()
