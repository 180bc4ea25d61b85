"""The dangerous-command guard: which commands need a person's approval, and what was approved.

``once`` approves one command; ``session`` approves the matched pattern for
the rest of the session; ``always`` stores it for the user (survives
restarts); ``deny`` refuses. ``approval_mode off`` skips asking.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from ..conf import gateway_settings
from ..models import ApprovalRule
from ..sessions.live import LiveSession
from ..writes import write_unit
from .context import TurnContext
from .pending import pending, timeout_for

DEFAULT_PATTERNS: list[list[str]] = [
    [r"\brm\s+(-[a-zA-Z]*[rR][a-zA-Z]*|--recursive)\b", "recursive delete"],
    [r"\bmkfs(\.\w+)?\b", "format a filesystem"],
    [r"\bdd\b.*\bof=", "raw disk write (dd)"],
    [r"\b(fdisk|parted|sfdisk|gdisk|wipefs)\b", "partition table change"],
    [r">\s*/dev/(sd|nvme|hd|vd|xvd)", "write to a block device"],
    [r"\b(shutdown|reboot|halt|poweroff)\b", "power off or reboot"],
    [r"\b(sudo|su|doas)\b", "privilege escalation"],
    [r"\bchmod\s+(-[a-zA-Z]*R[a-zA-Z]*\s+)?[0-7]*777\b", "world-writable permissions"],
    [r"\bchown\s+-[a-zA-Z]*R", "recursive ownership change"],
    [r"\b(curl|wget)\b[^|]*\|\s*(sudo\s+)?(ba|z|da)?sh\b", "pipe a download into a shell"],
    [r"\bgit\s+push\b.*(--force\b|-f\b|--force-with-lease)", "force push"],
    [r"\bgit\s+(reset\s+--hard|clean\s+-[a-zA-Z]*f)", "discard git work"],
    [r":\(\)\s*\{.*\};\s*:", "fork bomb"],
    [r"\bkill\s+-9\s+-1\b", "kill every process"],
    [r"\b(iptables|nft)\s+-F\b", "flush the firewall"],
    [r"\bDROP\s+(TABLE|DATABASE)\b", "drop a database object"],
]


@dataclass(frozen=True)
class Match:
    pattern: str
    description: str


@lru_cache(maxsize=8)
def _compiled(patterns: tuple[tuple[str, str], ...]) -> list[tuple[re.Pattern[str], str, str]]:
    return [(re.compile(regex, re.IGNORECASE), regex, description) for regex, description in patterns]


def patterns() -> list[tuple[re.Pattern[str], str, str]]:
    base = gateway_settings.DANGEROUS_PATTERNS
    base = DEFAULT_PATTERNS if base is None else base
    merged = tuple((regex, desc) for regex, desc in [*base, *gateway_settings.EXTRA_DANGEROUS_PATTERNS])
    return _compiled(merged)


def dangerous(command: str) -> Match | None:
    """The first dangerous pattern ``command`` matches, if any."""
    for compiled, regex, description in patterns():
        if compiled.search(command):
            return Match(regex, description)
    return None


def choices() -> list[str]:
    offered = [c for c in gateway_settings.APPROVAL_CHOICES if c in ("once", "session", "always", "deny")]
    return offered if "deny" in offered else [*offered, "deny"]


def pre_approved(session: LiveSession, match: Match) -> bool:
    if match.pattern in session.config.get("approved_patterns", ()):
        return True
    return ApprovalRule.objects.filter(owner_id=session.owner_id, pattern=match.pattern).exists()


def request_approval(ctx: TurnContext, command: str, match: Match | None, always_ask: bool = False) -> bool:
    """Ask (unless approval mode is off or it was approved before); True when the command may run."""
    session = ctx.session
    if session.config.get("approval_mode", "manual") == "off":
        ctx.approved_commands.add(command)
        return True
    if not always_ask and match is not None and pre_approved(session, match):
        return True
    description = match.description if match else "run this command"
    offered = choices()
    # The hermes clients build their buttons from allow_permanent, not from choices.
    payload = {"command": command, "description": description, "choices": offered}
    payload["allow_permanent"] = "always" in offered
    answer = pending.ask(session, "approval", payload, timeout_for("approval"))
    choice = answer.get("choice", "deny") if isinstance(answer, dict) else "deny"
    if choice not in choices():
        choice = "deny"
    if choice != "deny":
        ctx.approved_commands.add(command)
    if match is not None and choice == "session":
        from ..sessions import service

        with session.lock:
            session.config.setdefault("approved_patterns", set()).add(match.pattern)
        service.remember_config(session)
    elif match is not None and choice == "always":
        _remember_rule(session.owner_id, match.pattern, match.description)
    return choice != "deny"


@write_unit
def _remember_rule(owner_id: int | None, pattern: str, description: str) -> None:
    ApprovalRule.objects.get_or_create(
        owner_id=owner_id, pattern=pattern, defaults={"description": description}
    )
