"""A URL the database cannot look up is a 400: a NUL in the path or the query string reached PostgreSQL and answered 500."""

from django.http import HttpResponseBadRequest, JsonResponse

from apps.web.errors import error_body
from .parsers import text_problem


def url_problem(request) -> str | None:
    if problem := text_problem(request.path):
        return f"The URL {problem}"
    for key, values in request.GET.lists():
        for text in (key, *values):
            if problem := text_problem(text):
                return f"The query parameter {key!r} {problem}"
    return None


class UnstorableUrlMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        problem = url_problem(request)
        if problem is None:
            return self.get_response(request)
        if request.path.startswith("/api/"):
            return JsonResponse(error_body("bad_request", problem), status=400)
        return HttpResponseBadRequest(problem, content_type="text/plain; charset=utf-8")
