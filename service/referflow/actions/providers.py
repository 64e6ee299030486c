"""Per-program provider settings: inbound webhook secrets, credentials, options (write-only)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from referflow.actions.common import ProgramContext
from referflow.domain.timeutil import to_rfc3339, utcnow
from referflow.errors import NotFound, PermanentProviderError
from referflow.storage.models import ProviderConfig

PROVIDERS = ("stripe", "shopify", "hubspot", "klaviyo")


def configure(session: Session, ctx: ProgramContext, provider: str,
              body: dict[str, Any]) -> ProviderConfig:
    """Set (replace) the parts given; omitted parts keep their values."""
    if provider not in PROVIDERS:
        raise NotFound(f"unknown provider {provider!r}", code="unknown_provider")
    row = session.get(ProviderConfig, (ctx.id, provider))
    if row is None:
        row = ProviderConfig(program_id=ctx.id, provider=provider, webhook_secrets=[],
                             credentials={}, settings={})
        session.add(row)
    for part in ("webhook_secrets", "credentials", "settings"):
        if part in body:
            setattr(row, part, body[part])
    row.updated_at = utcnow()
    session.commit()
    return row


def credentials(session: Session, program_id: str, provider: str, *names: str) -> list[str]:
    """Return named credentials of a provider, or fail permanently when one is missing."""
    row = session.get(ProviderConfig, (program_id, provider))
    stored = row.credentials if row else {}
    missing = [n for n in names if not stored.get(n)]
    if missing:
        raise PermanentProviderError(f"{provider}: configure credentials {', '.join(missing)}")
    return [stored[n] for n in names]


def settings_of(session: Session, program_id: str, provider: str) -> dict[str, Any]:
    """Return a provider's non-secret settings for a program."""
    row = session.get(ProviderConfig, (program_id, provider))
    return dict(row.settings) if row else {}


def public_view(row: ProviderConfig) -> dict[str, Any]:
    """Return what may be shown: counts and names, never secrets."""
    return {"provider": row.provider, "webhook_secrets": len(row.webhook_secrets),
            "credentials": sorted(row.credentials), "settings": row.settings,
            "updated_at": to_rfc3339(row.updated_at)}
