"""Secrets at rest: Fernet tokens under keys derived from REFERFLOW_SECRET_KEY, with rotation.

Every purpose (one column: ``provider_configs.credentials``...) has its own Fernet key, derived
with HKDF-SHA256 from each secret key (``info`` names the purpose), so a value copied into
another column does not decrypt there. A stored value reads ``rfenc:v1:<Fernet token>``: the
token is authenticated, so a wrong key fails with ``UnreadableSecret``, never with garbage.

The first key encrypts; every key decrypts (``REFERFLOW_OLD_SECRET_KEYS``), until
``referflow secrets rotate`` has re-encrypted each value under the first.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from referflow.errors import UnreadableSecret

ENVELOPE = "rfenc:v1:"
SALT = b"referflow/secrets-at-rest/v1"
KEY_NAMES = "REFERFLOW_SECRET_KEY nor one of REFERFLOW_OLD_SECRET_KEYS"
# Configuration secrets read on every provider delivery or webhook send: their plain text is
# kept per stored token (a token decrypts to the same text for as long as its keyring lives),
# so a delivery does not pay a Fernet open. Bearer values (gift-card codes, stored answers) are
# never kept.
KEPT_PURPOSES = frozenset({"provider_configs.webhook_secrets", "provider_configs.credentials",
                           "webhook_subscriptions.secret"})
KEPT_MAX = 512


def derive(secret_key: str, purpose: str) -> Fernet:
    """Return the Fernet key of ``purpose`` under one secret key."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=SALT,
                info=f"referflow:{purpose}".encode())
    return Fernet(base64.urlsafe_b64encode(hkdf.derive(secret_key.encode())))


def is_encrypted(stored: str) -> bool:
    """Tell whether a stored value is a referflow ciphertext (else legacy plain text)."""
    return stored.startswith(ENVELOPE)


class Keyring:
    """The install's secret keys: the first encrypts, every one decrypts."""

    def __init__(self, keys: Sequence[str]):
        if not keys or not all(keys):
            raise UnreadableSecret("no secret key configured: set REFERFLOW_SECRET_KEY")
        self.keys = tuple(keys)
        self._fernets: dict[str, tuple[Fernet, MultiFernet]] = {}
        self._kept: dict[tuple[str, str], str] = {}

    def _for(self, purpose: str) -> tuple[Fernet, MultiFernet]:
        pair = self._fernets.get(purpose)
        if pair is None:
            derived = [derive(key, purpose) for key in self.keys]
            pair = self._fernets[purpose] = (derived[0], MultiFernet(derived))
        return pair

    def encrypt(self, purpose: str, plaintext: str) -> str:
        """Return the stored form of ``plaintext`` under the current key."""
        return ENVELOPE + self._for(purpose)[0].encrypt(plaintext.encode()).decode()

    def decrypt(self, purpose: str, stored: str) -> str:
        """Return the plain text of a stored value, or raise UnreadableSecret."""
        if purpose not in KEPT_PURPOSES:
            return self._open(purpose, stored, self._for(purpose)[1]).decode()
        plain = self._kept.get((purpose, stored))
        if plain is None:
            plain = self._open(purpose, stored, self._for(purpose)[1]).decode()
            if len(self._kept) >= KEPT_MAX:
                self._kept.clear()
            self._kept[(purpose, stored)] = plain
        return plain

    def reencrypt(self, purpose: str, stored: str) -> str | None:
        """Return ``stored`` re-encrypted under the current key; None when it already is.

        A value still in the clear (written before encryption at rest) is encrypted.
        """
        if not is_encrypted(stored):
            return self.encrypt(purpose, stored)
        current, every = self._for(purpose)
        try:
            current.decrypt(stored[len(ENVELOPE):].encode())
            return None
        except InvalidToken:
            pass
        return self.encrypt(purpose, self._open(purpose, stored, every).decode())

    def _open(self, purpose: str, stored: str, fernet: Fernet | MultiFernet) -> bytes:
        if not is_encrypted(stored):
            raise UnreadableSecret(f"{purpose} holds a value that is not encrypted: "
                                   "run `referflow migrate`, then `referflow secrets rotate`")
        try:
            return fernet.decrypt(stored[len(ENVELOPE):].encode())
        except InvalidToken:
            raise UnreadableSecret(
                f"{purpose} cannot be decrypted with the configured keys: it was encrypted under "
                f"a key that is neither {KEY_NAMES}; set the key it was written with") from None
