"""Use cases: one function per business verb (load -> decide -> save)."""

from referflow.actions import rollups

rollups.install()  # every transaction of every process that runs a use case keeps the statistics
