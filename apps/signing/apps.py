from django.apps import AppConfig
from django.conf import settings
from django.core import checks


class SigningConfig(AppConfig):
    name = "apps.signing"
    label = "signing"

    def ready(self) -> None:
        checks.register(signing_key_configured, checks.Tags.security, deploy=True)


def signing_key_configured(app_configs=None, **kwargs) -> list:
    """`manage.py check --deploy`: without a key, versions still enter production, but unsigned."""
    if settings.MANIFEST_SIGNING_KEY_FILE:
        return []
    return [checks.Warning(
        "Manifests are not signed: versions entering production or a governed alias get no signature, and "
        "`model-registry pull --verify` refuses them.",
        hint="Create a key with `manage.py manifest_signing_key create /path/key.pem` and set MANIFEST_SIGNING_KEY_FILE to it.",
        id="signing.W001",
    )]
