"""``manage.py gateway_token USERNAME [--name NAME]``: issue a bearer token for a user."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from ws_gateway.auth import issue_token


class Command(BaseCommand):
    help = "Issue a bearer token for USERNAME (printed once; only its hash is stored)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="what the token is for")
        parser.add_argument("--create-user", action="store_true", help="create the user if missing")

    def handle(self, *args: Any, username: str, name: str, create_user: bool, **options: Any) -> None:
        users = get_user_model()
        user = users.objects.filter(username=username).first()
        if user is None:
            if not create_user:
                raise CommandError(f"no user {username!r} (use --create-user)")
            user = users.objects.create_user(username=username)
        self.stdout.write(issue_token(user, name))
