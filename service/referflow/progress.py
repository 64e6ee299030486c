"""Progress of long CLI commands, on stderr: a bar on a terminal, lines in a log, or nothing."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any, TextIO

import click

LOG_EVERY_SECONDS = 5.0


class Progress:
    """Report ``done`` out of ``total`` units of work.

    ``show=None`` means: a bar when stderr is a terminal, silence otherwise (scripts, cron);
    ``show=True`` (``--progress``) also reports when stderr is not a terminal, as one line
    every few seconds and a last one at the end; ``show=False`` (``--no-progress``) never.
    """

    def __init__(self, label: str, total: int, show: bool | None = None,
                 stream: TextIO | None = None):
        self.label, self.total = label, total
        self.stream = stream or sys.stderr
        terminal = self.stream.isatty()
        self.mode = "off" if show is False or (show is None and not terminal) else (
            "bar" if terminal else "lines")
        self.done = 0
        self._bar: Any = None
        self._started = self._logged = time.monotonic()

    def __enter__(self) -> Progress:
        if self.mode == "bar":
            self._bar = click.progressbar(length=self.total, label=self.label, file=self.stream,
                                          show_pos=True, show_eta=True)
            self._bar.__enter__()
        return self

    def advance(self, units: int = 1, item: str | None = None) -> None:
        """Count ``units`` more as done; ``item`` names what is being worked on now."""
        self.done += units
        if self._bar is not None:
            self._bar.label = f"{self.label} ({item})" if item else self.label
            self._bar.update(units)
        elif (self.mode == "lines" and self.done < self.total
              and time.monotonic() - self._logged >= LOG_EVERY_SECONDS):
            self._line(item)  # the last line is the one __exit__ writes

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.__exit__(kind, exc, tb)
        elif self.mode == "lines":
            self._line("stopped" if kind else "done")

    def _line(self, item: str | None) -> None:
        self._logged = time.monotonic()
        share = f" ({100 * self.done // self.total}%)" if self.total else ""
        suffix = f", {item}" if item else ""
        click.echo(f"{self.label}: {self.done}/{self.total}{share}, "
                   f"{self._logged - self._started:.1f} s{suffix}", file=self.stream)


def progress_option(fn: Any) -> Any:
    """Add ``--progress/--no-progress`` to a command (default: a bar only on a terminal)."""
    return click.option("--progress/--no-progress", "progress", default=None,
                        help="Progress on stderr (default: only when stderr is a terminal)")(fn)
