"""`manage.py manifest_signing_key create PATH` writes a new Ed25519 signing key; `public PATH` prints its public half.

Rotating: create a new key, keep the old one's public half (`public OLD > old.pub.pem`), set MANIFEST_SIGNING_KEY_FILE
to the new key and add the old public key to MANIFEST_RETIRED_KEY_FILES. Old signatures keep verifying.
"""

from django.core.management.base import BaseCommand, CommandError

from apps.signing.keys import KeyFileError, create_key_file, public_pem


class Command(BaseCommand):
    help = "Create an Ed25519 manifest-signing key, or print the public half of one."

    def add_arguments(self, parser) -> None:
        parser.add_argument("action", choices=["create", "public"])
        parser.add_argument("path", help="the PEM file")

    def handle(self, *args, action: str, path: str, **options) -> None:
        try:
            if action == "create":
                key_id = create_key_file(path)
                self.stdout.write(f"Created {path} (key id {key_id}); set MANIFEST_SIGNING_KEY_FILE={path}")
            else:
                self.stdout.write(public_pem(path).decode(), ending="")
        except FileExistsError:
            raise CommandError(f"{path} exists; a key is never overwritten. Choose another path.") from None
        except (KeyFileError, OSError) as exc:
            raise CommandError(str(exc)) from exc
