"""The project's own middleware: a database that cannot be reached, or does not answer in time, answers 503 with
Retry-After, never a 500; log-in required everywhere but where a view says otherwise."""

import logging

from django.contrib.auth import middleware as auth_middleware

from apps.web.errors import DATABASE_UNAVAILABLE, database_unavailable

logger = logging.getLogger(__name__)


class DatabaseUnavailableMiddleware:
    """Views (DRF re-raises what its handler does not map); failures in other middleware reach `server_error`."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, DATABASE_UNAVAILABLE):
            return None
        logger.warning("Database unavailable during %s %s: %s", request.method, request.path, exception)
        return database_unavailable(request)


class LoginRequiredMiddleware(auth_middleware.LoginRequiredMiddleware):
    """Django's, asking the view first: a view marked `login_not_required` (the API, which authenticates itself, health,
    the public keys) never loads the session's user. Django's asks `request.user.is_authenticated` first, which loaded
    the session (a database read when the caller sends a session cookie) on every API call."""

    def process_view(self, request, view_func, view_args, view_kwargs):
        if not getattr(view_func, "login_required", True):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)
