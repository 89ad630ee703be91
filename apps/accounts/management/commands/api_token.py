from datetime import date, datetime, time
from datetime import timezone as dt_timezone

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.accounts.models import ApiToken, TokenScope
from apps.accounts.services import api_token_create, api_token_revoke
from apps.models.permissions import visible_models


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--expires-on takes a date as YYYY-MM-DD, not '{value}'.") from None


class Command(BaseCommand):
    help = "Create, list or revoke personal API tokens."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create a token and print its secret once.")
        create.add_argument("username")
        create.add_argument("--name", default="cli")
        create.add_argument(
            "--scope", choices=TokenScope.values, default=TokenScope.READ,
            help="read (default; what deployment pipelines need), register (also register versions and report deployments) or full.",
        )
        create.add_argument("--expires-on", metavar="YYYY-MM-DD", help="The token stops working at 00:00 UTC that day.")
        create.add_argument("--model", action="append", metavar="NAME", help="Limit the token to this model (repeat for several).")
        listing = sub.add_parser("list", help="List a user's tokens.")
        listing.add_argument("username")
        revoke = sub.add_parser("revoke", help="Revoke a token by the prefix shown in 'list'.")
        revoke.add_argument("username")
        revoke.add_argument("prefix")

    def handle(self, *args, action: str, username: str, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named '{username}'. Create one with 'manage.py createsuperuser' or in the admin.")
        if action == "create":
            self._create(user, options)
        elif action == "list":
            for token in ApiToken.objects.filter(user=user).prefetch_related("allowed_models"):
                state = f"revoked {token.revoked_at:%Y-%m-%d}" if token.revoked_at else "active"
                expires = f"expires {token.expires_at:%Y-%m-%d %H:%M} UTC" if token.expires_at else "no expiry"
                models = (",".join(m.name for m in token.allowed_models.all()) or "-") if token.limited_to_models else "all models"
                self.stdout.write(f"{token.prefix}  {token.name}  {state}  {token.scope}  {expires}  {models}")
        else:
            token = ApiToken.objects.filter(user=user, prefix=options["prefix"]).first()
            if token is None:
                raise CommandError(f"User '{username}' has no token starting with '{options['prefix']}'; see 'api_token list {username}'.")
            api_token_revoke(token=token, actor=user)
            self.stdout.write(f"revoked {token.prefix}")

    def _create(self, user, options) -> None:
        models = None
        if options["model"]:
            names = list(dict.fromkeys(options["model"]))
            models = list(visible_models(user).filter(name__in=names))
            missing = sorted(set(names) - {model.name for model in models})
            if missing:
                raise CommandError(f"User '{user.get_username()}' may not see or has no model named {', '.join(missing)}.")
        expires_at = None
        if options["expires_on"]:
            expires_at = datetime.combine(_day(options["expires_on"]), time.min, tzinfo=dt_timezone.utc)
        try:
            _, secret = api_token_create(user=user, name=options["name"], scope=options["scope"], expires_at=expires_at, models=models)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(secret)
