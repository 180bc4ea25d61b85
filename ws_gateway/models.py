"""Stored sessions and their transcripts."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class StoredSession(models.Model):
    """A session's durable row, keyed by its stored id ``YYYYMMDD_HHMMSS_<6 hex>``."""

    id = models.CharField(primary_key=True, max_length=32)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="gateway_sessions",
    )
    title = models.CharField(max_length=255, blank=True, default="", db_index=True)
    preview = models.CharField(max_length=255, blank=True, default="")
    source = models.CharField(max_length=64, blank=True, default="")
    model = models.CharField(max_length=255, blank=True, default="")
    cwd = models.TextField(blank=True, default="")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    started_at = models.DateTimeField(default=timezone.now)
    last_active = models.DateTimeField(default=timezone.now, db_index=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=64, blank=True, default="")
    message_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-last_active"]
        indexes = [models.Index(fields=["owner", "-last_active"])]

    def __str__(self) -> str:
        return f"{self.id} {self.title}".strip()


class TranscriptMessage(models.Model):
    """One transcript row: a user prompt, an assistant reply or a tool call."""

    ROLES = [("user", "user"), ("assistant", "assistant"), ("tool", "tool")]

    session = models.ForeignKey(StoredSession, on_delete=models.CASCADE, related_name="messages")
    ordinal = models.PositiveIntegerField()
    role = models.CharField(max_length=16, choices=ROLES)
    text = models.TextField(blank=True, default="")
    reasoning = models.TextField(blank=True, default="")
    name = models.CharField(max_length=255, blank=True, default="")
    args = models.JSONField(null=True, blank=True)
    context = models.TextField(blank=True, default="")
    timestamp = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["session", "ordinal"]
        constraints = [
            models.UniqueConstraint(fields=["session", "ordinal"], name="ws_gateway_message_ordinal")
        ]

    def __str__(self) -> str:
        return f"{self.session_id}#{self.ordinal} {self.role}"


class ApprovalRule(models.Model):
    """A command pattern a user approved with ``always``: it is not asked again.

    ``pattern`` is the command policy's key of the approved command (``cmd:rm -f -r``,
    ``exact:...``; see ``ws_gateway.agent.policy``).
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="gateway_approval_rules",
    )
    pattern = models.CharField(
        max_length=255,
        help_text="The command policy's pattern key of the approved command (ws_gateway.agent.policy).",
    )
    description = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["owner", "pattern"])]

    def __str__(self) -> str:
        return f"{self.owner_id}: {self.description or self.pattern}"


class AccessToken(models.Model):
    """A bearer token for non-browser clients. Only its SHA-256 is stored."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="gateway_tokens"
    )
    name = models.CharField(max_length=100, blank=True, default="")
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.user} {self.name}".strip()


class ClientConfig(models.Model):
    """A user's client settings (the hermes clients' display preferences) and when they changed.

    ``owner_key`` is the user's id, or ``"anonymous"`` (anonymous mode is single-tenant).
    """

    owner_key = models.CharField(max_length=64, unique=True)
    data = models.JSONField(default=dict)
    mtime = models.FloatField(default=0.0)

    def __str__(self) -> str:
        return f"config of {self.owner_key}"


class SpawnTree(models.Model):
    """A finished subagent tree a client saved for a session (``spawn_tree.save``)."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="gateway_spawn_trees",
    )
    session_key = models.CharField(max_length=64, blank=True, default="", db_index=True)
    label = models.CharField(max_length=255, blank=True, default="")
    started_at = models.FloatField(null=True, blank=True)
    finished_at = models.FloatField()
    subagents = models.JSONField(default=list)

    class Meta:
        ordering = ["-finished_at"]

    def __str__(self) -> str:
        return f"{self.session_key} {self.label}".strip()


class LiveSessionPage(models.Model):
    """No table: gives the admin its live-sessions page (ws_gateway.live_sessions) and permissions."""

    class Meta:
        managed = False
        verbose_name = "live session"
        verbose_name_plural = "live sessions"
        default_permissions = ("view",)
        permissions = [("close_live_session", "Can close live sessions")]
