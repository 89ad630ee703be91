import secrets

from django.db import transaction
from django.utils import timezone

from apps.audit import services as audit

from .models import ApiToken, token_digest

TOKEN_PREFIX = "mr_"


@transaction.atomic
def api_token_create(*, user, name: str) -> tuple[ApiToken, str]:
    """Create a token and return it with its secret, which is not stored and cannot be shown again."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name.strip() or "token", prefix=raw[:10], digest=token_digest(raw))
    audit.record(actor=user, obj=token, action="api_token.created", after={"name": token.name, "prefix": token.prefix})
    return token, raw


@transaction.atomic
def api_token_revoke(*, token: ApiToken, actor) -> ApiToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit.record(actor=actor, obj=token, action="api_token.revoked", before={"name": token.name})
    return token
