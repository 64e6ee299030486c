"""Keyed hashes for personal identifiers (IPs, devices, fingerprints, emails)."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress


def keyed_hash(secret: str, kind: str, value: str) -> str:
    """Return a hex HMAC-SHA256 of ``value``, domain-separated by ``kind``."""
    # hmac.digest: OpenSSL's one-shot HMAC, the same value as hmac.new(...) at half the cost
    return hmac.digest(secret.encode(), f"{kind}:{value}".encode(), hashlib.sha256).hex()


def ip_network_key(raw_ip: str) -> str | None:
    """Return the household key of an IP: the address for IPv4, the /64 for IPv6."""
    try:
        ip = ipaddress.ip_address(raw_ip.strip())
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{ip}/64", strict=False))
    return str(ip)


def sha256_hex(value: str | bytes) -> str:
    """Return the plain SHA-256 hex digest (for API keys and request fingerprints)."""
    data = value.encode() if isinstance(value, str) else value
    return hashlib.sha256(data).hexdigest()
