"""Use cases: one function per business verb (load -> decide -> save)."""
