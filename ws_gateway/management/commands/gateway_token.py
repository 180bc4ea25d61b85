"""``manage.py gateway_token``: issue, list and revoke bearer tokens.

    manage.py gateway_token USERNAME [--name NAME] [--create-user]   issue one (printed once)
    manage.py gateway_token create USERNAME [--name NAME] [--create-user]   the same
    manage.py gateway_token list [USERNAME]      id, user, name, created, last used (never a token)
    manage.py gateway_token revoke ID [ID ...]   delete tokens by id (from ``list``)
    manage.py gateway_token revoke --user USERNAME   every token of a user

Only a SHA-256 of each token is stored, so a lost token cannot be shown again:
revoke it and issue a new one.
"""

from __future__ import annotations

import sys
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ws_gateway.auth import issue_token
from ws_gateway.models import AccessToken

SUBCOMMANDS = ("create", "list", "revoke")


class Command(BaseCommand):
    help = (
        "Bearer tokens: `gateway_token USERNAME` (or `create USERNAME`) issues one and prints it once; "
        "`list [USERNAME]` shows them; `revoke ID...` or `revoke --user USERNAME` deletes them."
    )

    def run_from_argv(self, argv: list[str]) -> None:
        # The historical form `gateway_token USERNAME` means `gateway_token create USERNAME`.
        args = argv[2:]
        if args and not args[0].startswith("-") and args[0] not in SUBCOMMANDS:
            argv = [*argv[:2], "create", *args]
        super().run_from_argv(argv)

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, parser_class=type(parser))
        create = sub.add_parser("create", help="issue a token for USERNAME (printed once)")
        create.add_argument("username")
        create.add_argument("--name", default="", help="what the token is for")
        create.add_argument(
            "--create-user",
            action="store_true",
            help="create USERNAME (without a password) when it does not exist",
        )
        listing = sub.add_parser("list", help="list tokens (of USERNAME)")
        listing.add_argument("username", nargs="?")
        revoke = sub.add_parser("revoke", help="delete tokens by id, or every token of --user")
        revoke.add_argument("ids", nargs="*", type=int)
        revoke.add_argument("--user", dest="revoke_user", help="revoke every token of this user")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        getattr(self, f"_{action}")(**options)

    def _create(self, *, username: str, name: str, create_user: bool, **options: Any) -> None:
        users = get_user_model()
        user = users.objects.filter(**{users.USERNAME_FIELD: username}).first()
        if user is None:
            if not create_user:
                raise CommandError(
                    f"no user {username!r}: create one first (manage.py createsuperuser), "
                    "or pass --create-user to create it without a password"
                )
            user = users.objects.create_user(**{users.USERNAME_FIELD: username})
            self.stderr.write(f"created user {username!r} (no password: it can only use tokens)")
        if not user.is_active:
            raise CommandError(f"user {username!r} is inactive: its tokens would be refused")
        self.stdout.write(issue_token(user, name))
        if sys.stdout.isatty():
            self.stderr.write("Copy it now: only its hash is stored.")

    def _list(self, *, username: str | None, **options: Any) -> None:
        tokens = AccessToken.objects.select_related("user").order_by("id")
        if username:
            tokens = tokens.filter(**{f"user__{get_user_model().USERNAME_FIELD}": username})
        self.stdout.write(f"{'id':>5}  {'user':<20} {'name':<24} {'created':<20} last used")
        for token in tokens:
            self.stdout.write(
                f"{token.id:>5}  {token.user.get_username():<20} {token.name or '-':<24} "
                f"{_when(token.created_at):<20} {_when(token.last_used_at)}"
            )

    def _revoke(self, *, ids: list[int], revoke_user: str | None, **options: Any) -> None:
        if not ids and not revoke_user:
            raise CommandError("give token ids (see `gateway_token list`) or --user USERNAME")
        tokens = AccessToken.objects.all()
        if ids:
            tokens = tokens.filter(id__in=ids)
            missing = sorted(set(ids) - set(tokens.values_list("id", flat=True)))
            if missing:
                raise CommandError(f"no token with id {', '.join(map(str, missing))}: nothing revoked")
        if revoke_user:
            tokens = tokens.filter(**{f"user__{get_user_model().USERNAME_FIELD}": revoke_user})
        count, _ = tokens.delete()
        self.stdout.write(f"revoked {count} token(s)")


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "never"
