from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from apps.accounts.models import ApiToken
from apps.accounts.services import api_token_create, api_token_revoke


class Command(BaseCommand):
    help = "Create, list or revoke personal API tokens."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create a token and print its secret once.")
        create.add_argument("username")
        create.add_argument("--name", default="cli")
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
            token, secret = api_token_create(user=user, name=options["name"])
            self.stdout.write(secret)
        elif action == "list":
            for token in ApiToken.objects.filter(user=user):
                state = f"revoked {token.revoked_at:%Y-%m-%d}" if token.revoked_at else "active"
                self.stdout.write(f"{token.prefix}  {token.name}  {state}")
        else:
            token = ApiToken.objects.filter(user=user, prefix=options["prefix"]).first()
            if token is None:
                raise CommandError(f"User '{username}' has no token starting with '{options['prefix']}'; see 'api_token list {username}'.")
            api_token_revoke(token=token, actor=user)
            self.stdout.write(f"revoked {token.prefix}")
