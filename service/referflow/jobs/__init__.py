"""Background work: the in-process runner (embedded default) and rq tasks."""
