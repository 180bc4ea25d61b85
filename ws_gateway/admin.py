"""Admin for operators: stored sessions and their (read-only) transcripts, access tokens,
"always" approval rules, and the live sessions of the running processes."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from . import live_sessions
from .auth import TOKEN_PREFIX, digest, new_token
from .models import AccessToken, ApprovalRule, LiveSessionPage, StoredSession, TranscriptMessage

CLOSE_PERMISSION = "ws_gateway.close_live_session"


class ReadOnlyMixin:
    """Viewable, never added, changed or deleted here (transcripts are the record of what was said)."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class TranscriptInline(ReadOnlyMixin, admin.TabularInline):
    model = TranscriptMessage
    extra = 0
    can_delete = False
    fields = ("ordinal", "role", "name", "text", "timestamp")
    readonly_fields = fields
    show_change_link = True


@admin.register(StoredSession)
class StoredSessionAdmin(admin.ModelAdmin):
    list_display = ("id", "title", "owner", "source", "message_count", "last_active", "end_reason")
    list_filter = ("source", "end_reason")
    search_fields = ("id", "title", "preview")
    raw_id_fields = ("owner", "parent")
    readonly_fields = ("id", "started_at", "last_active", "ended_at", "end_reason", "message_count")
    inlines = [TranscriptInline]


@admin.register(TranscriptMessage)
class TranscriptMessageAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("session", "ordinal", "role", "name", "timestamp")
    list_filter = ("role",)
    search_fields = ("session__id", "text")


@admin.register(ApprovalRule)
class ApprovalRuleAdmin(admin.ModelAdmin):
    """Patterns people approved with "always"; delete one to be asked again."""

    list_display = ("pattern", "description", "owner", "created_at")
    list_filter = ("created_at",)
    search_fields = ("pattern", "description", "owner__username")
    raw_id_fields = ("owner",)


@admin.register(AccessToken)
class AccessTokenAdmin(admin.ModelAdmin):
    """Bearer tokens: created here (the value is shown once, on the page that follows), revoked by
    deleting them. Only a SHA-256 of each token is stored."""

    list_display = ("name", "user", "created_at", "last_used_at", "short_digest")
    list_filter = ("created_at", "last_used_at")
    search_fields = ("name", "user__username")
    raw_id_fields = ("user",)
    actions = ["revoke"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None:
            return ["user", "name"]
        return ["user", "name", "created_at", "last_used_at", "short_digest"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None:
            return []
        return ["user", "created_at", "last_used_at", "short_digest"]

    @admin.display(description="digest")
    def short_digest(self, obj: AccessToken) -> str:
        return obj.digest[:12] + "…"

    @admin.action(description="Revoke the selected tokens", permissions=["delete"])
    def revoke(self, request: HttpRequest, queryset: Any) -> None:
        count, _ = queryset.delete()
        self.message_user(request, f"Revoked {count} token(s).", messages.SUCCESS)

    def save_model(self, request: HttpRequest, obj: AccessToken, form: Any, change: bool) -> None:
        if not change:
            token = new_token()
            obj.digest = digest(token)
            request._gateway_new_token = token  # for response_add only: never stored, never in a cookie
        super().save_model(request, obj, form, change)

    def response_add(self, request: HttpRequest, obj: AccessToken, post_url_continue: Any = None) -> Any:
        # The plain token goes in this response's body and nowhere else (not in the messages
        # framework: its storage is a cookie or the session).
        token = getattr(request, "_gateway_new_token", None)
        if token is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Token created",
            "token": token,
            "token_obj": obj,
            "prefix": TOKEN_PREFIX,
            "changelist_url": reverse("admin:ws_gateway_accesstoken_changelist"),
        }
        response = TemplateResponse(request, "admin/ws_gateway/token_created.html", context)
        response["Cache-Control"] = "no-store"
        return response


@admin.register(LiveSessionPage)
class LiveSessionAdmin(admin.ModelAdmin):
    """The live sessions of every process (a cluster's workers are asked), with a close button."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[Any]:
        return [
            path("close/", self.admin_site.admin_view(self.close_view), name="ws_gateway_livesession_close"),
            *super().get_urls(),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        if not self.has_view_permission(request):
            raise PermissionDenied
        found = live_sessions.inventory()
        owners = _usernames({row["owner_id"] for row in found.rows if row["owner_id"] is not None})
        rows = [{**row, "owner": owners.get(row["owner_id"], "anonymous")} for row in found.rows]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Live sessions",
            "rows": rows,
            "inventory": found,
            "can_close": request.user.has_perm(CLOSE_PERMISSION),
            "close_url": reverse("admin:ws_gateway_livesession_close"),
        }
        return TemplateResponse(request, "admin/ws_gateway/live_sessions.html", context)

    @staticmethod
    @require_POST
    def close_view(request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm(CLOSE_PERMISSION):
            raise PermissionDenied
        session_id = request.POST.get("session_id", "")
        if session_id and live_sessions.close(session_id, request.POST.get("channel", "")):
            messages.success(request, f"Closed session {session_id}.")
        else:
            messages.warning(request, f"Session {session_id} was not live (already ended?).")
        return HttpResponseRedirect(reverse("admin:ws_gateway_livesessionpage_changelist"))


def _usernames(ids: set[int]) -> dict[int, str]:
    users = get_user_model()
    return {user.pk: user.get_username() for user in users.objects.filter(pk__in=ids)}
