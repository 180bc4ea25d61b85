"""Admin for stored sessions and transcripts."""

from django.contrib import admin

from .models import StoredSession, TranscriptMessage


class TranscriptInline(admin.TabularInline):  # type: ignore[type-arg]
    model = TranscriptMessage
    extra = 0
    fields = ("ordinal", "role", "name", "text", "timestamp")
    readonly_fields = fields


@admin.register(StoredSession)
class StoredSessionAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("id", "title", "owner", "source", "message_count", "last_active", "end_reason")
    list_filter = ("source", "end_reason")
    search_fields = ("id", "title", "preview")
    raw_id_fields = ("owner", "parent")
    inlines = [TranscriptInline]


@admin.register(TranscriptMessage)
class TranscriptMessageAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("session", "ordinal", "role", "name", "timestamp")
    list_filter = ("role",)
    search_fields = ("session__id", "text")
    raw_id_fields = ("session",)
