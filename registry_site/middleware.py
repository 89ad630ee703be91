"""A database that cannot be reached, or does not answer in time, answers 503 with Retry-After, never a 500."""

import logging

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
