import copy
import ipaddress
import logging
import math
import threading
import time
from datetime import timedelta
from datetime import timezone as dt_timezone

from cachetools import TTLCache
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.urls import reverse
from django.utils import timezone
from rest_framework import authentication, exceptions

from apps.web.rawsql import aware

from .models import ApiToken, TokenGrant, token_digest

logger = logging.getLogger(__name__)


def _user_for_token(digest: str):
    """The token's user, with the token's `token_id`, `token_last_used_at`, `token_scope`, `token_expires_at` and
    `token_limited` attached, in one query.

    A raw query because every API request pays for this one: building the ORM join cost more than running it.
    """
    User = get_user_model()
    sql = (
        "SELECT u.*, t.id AS token_id, t.prefix AS token_prefix, t.last_used_at AS token_last_used_at, t.scope AS token_scope,"
        " t.expires_at AS token_expires_at, t.limited_to_models AS token_limited"
        f" FROM {User._meta.db_table} u"
        f" JOIN {ApiToken._meta.db_table} t ON t.user_id = u.{User._meta.pk.column}"
        " WHERE t.digest = %s AND t.revoked_at IS NULL"
    )
    return next(iter(User.objects.raw(sql, [digest])), None)


class _AcceptedTokens:
    """The tokens this process accepted in the last API_TOKEN_CACHE_SECONDS, by digest: their user as `_user_for_token`
    loaded it, with the grant attached. What a permission check reads (guardian's tables) is never remembered here, only
    what the token row and the user row say, so a permission granted or taken away applies to the next request.

    A change to any token or user saved in this process empties it (the receivers below); other processes see that
    change when their entry ages out. cachetools' TTLCache bounds it (oldest out first) and the lock makes it safe for
    threaded servers.
    """

    def __init__(self, maxsize: int = 4096):
        self._maxsize = maxsize
        self._lock = threading.Lock()
        self._entries = None
        self.generation = 0  # moves on every clear: a lookup that began before one must not be remembered after it

    def get(self, digest: str):
        with self._lock:
            table = self._table()
            user = table.get(digest) if table is not None else None
        return copy.copy(user) if user is not None else None  # each request may set attributes on its own user

    def put(self, digest: str, user, *, generation: int) -> None:
        with self._lock:
            table = self._table()
            if table is not None and generation == self.generation:
                table[digest] = copy.copy(user)

    def clear(self, **_signal) -> None:
        with self._lock:
            self._entries = None
            self.generation += 1

    def _table(self) -> TTLCache | None:
        """None when API_TOKEN_CACHE_SECONDS is 0: every token is looked up on every request."""
        seconds = settings.API_TOKEN_CACHE_SECONDS
        if not seconds:
            return None
        if self._entries is None or self._entries.ttl != seconds:  # built on first use, and again if the setting changes
            self._entries = TTLCache(maxsize=self._maxsize, ttl=seconds)
        return self._entries


accepted_tokens = _AcceptedTokens()
post_save.connect(accepted_tokens.clear, sender=ApiToken, dispatch_uid="accepted-tokens-token-saved")
post_delete.connect(accepted_tokens.clear, sender=ApiToken, dispatch_uid="accepted-tokens-token-deleted")
post_save.connect(accepted_tokens.clear, sender=settings.AUTH_USER_MODEL, dispatch_uid="accepted-tokens-user-saved")
post_delete.connect(accepted_tokens.clear, sender=settings.AUTH_USER_MODEL, dispatch_uid="accepted-tokens-user-deleted")
m2m_changed.connect(accepted_tokens.clear, sender=ApiToken.allowed_models.through, dispatch_uid="accepted-tokens-limit-changed")


def _grant_for(user) -> TokenGrant:
    """The token as the permission helper reads it. Only a token limited to chosen models costs a second query."""
    model_ids = None
    if user.token_limited:
        chosen = ApiToken.allowed_models.through.objects.filter(apitoken_id=user.token_id)
        model_ids = frozenset(chosen.values_list("registeredmodel_id", flat=True))
    return TokenGrant(id=user.token_id, scope=user.token_scope, expires_at=aware(user.token_expires_at), model_ids=model_ids)


def client_address(request) -> str | None:
    """The caller's address, for log-in lockouts (axes' AXES_CLIENT_IP_CALLABLE) and token throttling alike.

    REMOTE_ADDR; behind TRUSTED_PROXY_COUNT proxies that each append the address they saw to X-Forwarded-For, the
    entry the outermost one wrote (anything left of it came from the client and proves nothing).
    """
    meta = request.META
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies:
        forwarded = [part.strip() for part in meta.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        if len(forwarded) >= proxies and _is_address(forwarded[-proxies]):
            return forwarded[-proxies]
    remote = meta.get("REMOTE_ADDR", "")
    return remote if _is_address(remote) else None


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _throttle_keys(address: str) -> tuple[str, str]:
    return f"api-token-failures:{address}", f"api-token-blocked:{address}"


def token_throttle_check(address: str) -> None:
    """Answer 429 with Retry-After while the address is blocked for failed token attempts.

    Checked before the token is looked up, so a blocked address cannot try tokens at all (a right guess included)
    and costs no database query; a valid token from any other address pays one cache read here.
    """
    blocked_until = cache.get(_throttle_keys(address)[1])
    if blocked_until is None:
        return
    wait = math.ceil(blocked_until - time.time())
    if wait > 0:
        raise exceptions.Throttled(
            wait=wait, detail=f"Too many failed token attempts from your address. Try again in {wait} seconds."
        )


def token_failure_record(address: str) -> None:
    """Count a failed token attempt; at API_TOKEN_FAILURE_LIMIT within the cool-off, block the address for the cool-off.

    Counters live in Django's cache (the configured CACHES): per process with the default local-memory cache,
    shared by every worker when CACHE_URL names Redis. Only failures write; a valid token never does.
    """
    count_key, blocked_key = _throttle_keys(address)
    cool_off = settings.API_TOKEN_COOLOFF_SECONDS
    cache.add(count_key, 0, timeout=cool_off)
    try:
        failures = cache.incr(count_key)
    except ValueError:  # expired between add and incr
        cache.set(count_key, 1, timeout=cool_off)
        failures = 1
    if failures >= settings.API_TOKEN_FAILURE_LIMIT:
        cache.set(blocked_key, time.time() + cool_off, timeout=cool_off)
        cache.delete(count_key)
        logger.warning("API token attempts from %s blocked for %d s after %d failures", address, cool_off, failures)


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <token>` (or `Token <token>`), looked up by its SHA-256.

    Returns (user, TokenGrant): the grant is DRF's `request.auth` and is also attached to the user as `active_token`,
    which is how apps.models.permissions applies the token's scope and model limit to every check made for that user.
    """

    keywords = ("bearer", "token")

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower().decode(errors="replace") not in self.keywords:
            return None
        address = client_address(request) or "unknown"
        token_throttle_check(address)
        if len(header) != 2:
            token_failure_record(address)
            raise exceptions.AuthenticationFailed("Send the header as 'Authorization: Bearer <token>'.")
        digest = token_digest(header[1].decode(errors="replace"))
        generation = accepted_tokens.generation
        user = accepted_tokens.get(digest)
        if user is None:
            user = _user_for_token(digest)
            if user is not None and user.is_active:
                user.active_token = _grant_for(user)
                accepted_tokens.put(digest, user, generation=generation)
        if user is None or not user.is_active:
            token_failure_record(address)
            raise exceptions.AuthenticationFailed("Unknown or revoked token; create a new one under 'API tokens'.")
        now = timezone.now()
        expires_at = aware(user.token_expires_at)
        if expires_at is not None and expires_at <= now:
            # Not counted as a failed attempt: the caller holds a real secret, it has only run out.
            raise exceptions.AuthenticationFailed(
                f"This token ('{user.token_prefix}…') expired on {expires_at.astimezone(dt_timezone.utc):%Y-%m-%d %H:%M} UTC;"
                f" create a new one on the API tokens page ({reverse('accounts:tokens')}) or with 'manage.py api_token create'."
            )
        last_used = aware(user.token_last_used_at)
        if last_used is None or now - last_used > timedelta(minutes=5):
            ApiToken.objects.filter(pk=user.token_id).update(last_used_at=now)  # an update(): no post_save, the entry stays
            user.token_last_used_at = now
            accepted_tokens.put(digest, user, generation=generation)
        return user, user.active_token

    def authenticate_header(self, request):
        return 'Bearer realm="api"'
