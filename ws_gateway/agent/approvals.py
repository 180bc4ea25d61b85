"""Approvals: whether a terminal command may run now, and what a person approved.

The decision is the command policy's (:mod:`.policy`, on the parsed command):
a command it does not let run asks. The configured ``DANGEROUS_PATTERNS`` (and
``EXTRA_DANGEROUS_PATTERNS``) are regexes over the raw text that always ask, on
top of the policy, and name the danger in the request's description. A sandbox
backend with ``auto_approve`` runs what the policy would ask about, but not what
a dangerous pattern matches.

``once`` approves one command; ``session`` approves the command's pattern key
(from the parse, see :mod:`.policy`) for the rest of the session; ``always``
stores the key for the user (:class:`~ws_gateway.models.ApprovalRule`, survives
restarts); ``deny`` refuses. ``approval_mode off`` skips asking, and only when
the deployment allows it (``ALLOW_APPROVAL_OFF``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import lru_cache

from ..conf import gateway_settings
from ..models import ApprovalRule
from ..sessions import lifecycle
from ..sessions.live import LiveSession
from ..terminal import BackendUnavailable, backend
from ..writes import release, write_unit
from .context import TurnContext
from .pending import pending, timeout_for
from .policy import Decision, bounded_key, decide

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


@dataclass(frozen=True)
class Assessment:
    """One command's fate: ``ask`` a person or not, shown with ``description``, remembered as ``key``."""

    ask: bool
    description: str
    key: str
    decision: Decision
    match: Match | None


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


def assess(session: LiveSession, command: str) -> Assessment:
    """The policy's decision for ``command`` in the session's cwd, with the dangerous patterns on top."""
    decision = decide(command, session.cwd or os.getcwd())
    match = dangerous(command)
    try:
        auto_approve = backend().auto_approve
    except BackendUnavailable:
        auto_approve = False  # the run itself reports why the backend cannot run
    ask = match is not None or (decision.ask and not auto_approve)
    description = match.description if match else decision.description
    # Approving a command a dangerous pattern matched approves that pattern for that parse only:
    # "always" for one `echo WORD` must not let every later `echo` pass the same pattern.
    key = decision.key if match is None else bounded_key(f"{decision.key} [{match.pattern}]")
    return Assessment(ask, description, key, decision, match)


def choices() -> list[str]:
    offered = [c for c in gateway_settings.APPROVAL_CHOICES if c in ("once", "session", "always", "deny")]
    return offered if "deny" in offered else [*offered, "deny"]


def approvals_off(session: LiveSession) -> bool:
    """``approval_mode off`` counts only where the deployment allows it (a stored "off" may predate that)."""
    return (
        bool(gateway_settings.ALLOW_APPROVAL_OFF) and session.config.get("approval_mode", "manual") == "off"
    )


def pre_approved(session: LiveSession, key: str) -> bool:
    if key in session.config.get("approved_patterns", ()):
        return True
    try:
        return ApprovalRule.objects.filter(owner_id=session.owner_id, pattern=key).exists()
    finally:
        release()  # a turn thread may wait long after this: give a pooled connection back


def may_run(ctx: TurnContext, command: str) -> bool:
    """The terminal tool's gate: True when ``command`` may run now (asking first if it must)."""
    if command in ctx.approved_commands:
        return True
    assessment = assess(ctx.session, command)
    if not assessment.ask:
        return True
    return request_approval(ctx, command, assessment)


def request_approval(
    ctx: TurnContext, command: str, assessment: Assessment, always_ask: bool = False
) -> bool:
    """Ask (unless approval mode is off or the key was approved before); True when the command may run."""
    session = ctx.session
    if approvals_off(session):
        ctx.approved_commands.add(command)
        return True
    key = assessment.key
    if not always_ask and pre_approved(session, key):
        return True
    offered = choices()
    answer = pending.ask(
        session,
        "approval",
        {
            "command": command,
            "description": assessment.description,
            "choices": offered,
            "allow_permanent": "always" in offered,
        },
        timeout_for("approval"),
    )
    choice = answer.get("choice", "deny") if isinstance(answer, dict) else "deny"
    if choice not in offered:
        choice = "deny"
    if choice != "deny":
        ctx.approved_commands.add(command)
    if choice == "session":
        with session.lock:
            session.config.setdefault("approved_patterns", set()).add(key)
        lifecycle.remember_config(session)
    elif choice == "always":
        _remember_rule(session.owner_id, key, assessment.description[:255])
    return choice != "deny"


@write_unit
def _remember_rule(owner_id: int | None, pattern: str, description: str) -> None:
    ApprovalRule.objects.get_or_create(
        owner_id=owner_id, pattern=pattern, defaults={"description": description}
    )
