"""The demo program of the embedded start, and what `referflow serve` tells a newcomer."""

from __future__ import annotations

import shlex

DEMO_NAME = "Demo program"
# The defaults (domain/program.py ProgramConfig, as `programs create --landing-url` and
# createProgram store them) with two changes, so the README walkthrough finishes on the first
# day: qualified referrals are approved at once instead of held 14 days, and both sides are paid.
DEMO_CONFIG = {
    "landing_url": "https://shop.example.com/welcome",
    "hold_days": 0,
    "rewards": {"advocate": {"type": "gift_card", "amount": 2000},
                "friend": {"type": "gift_card", "amount": 1000}},
}


def describe() -> list[str]:
    """Say what the demo program is and how it differs from a real one."""
    return [
        "The demo program: the default rules, except that a qualified referral is approved at once",
        "(hold_days 0; a real program holds it 14 days, the refund window) and the friend gets a",
        "1000 (USD 10.00) gift card as well as the advocate's 2000. Change it with",
        "PUT /v1/program/config; make your own with `referflow programs create --landing-url URL`.",
    ]


def next_steps(base_url: str, api_key: str) -> list[str]:
    """Say what to run next: the README walkthrough's first step, ready to paste."""
    body = '{"advocate": {"external_id": "cus_ann", "email": "ann@example.com", "name": "Ann"}}'
    return [
        'Next: README "A referral, start to finish (curl)", on this program:',
        f"  KEY={api_key}",
        '  H="Authorization: Bearer $KEY"',
        f"  curl -s -H \"$H\" -H 'Content-Type: application/json' {base_url}/v1/links -d {shlex.quote(body)}",
    ]


def lost_key_help() -> list[str]:
    """Say how to find the programs again when their keys were not kept."""
    return [
        "Programs: `referflow programs list` shows them (key prefixes only; keys are never stored);",
        "`referflow keys create --program PROGRAM_ID` makes a new key.",
    ]
