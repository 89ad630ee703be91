"""Uploads are authorized before a byte of their body is read.

CsrfViewMiddleware (and DRF's session authentication, which runs the same check) reads `request.POST`: for a
multipart body that parses the whole upload and spools its files to disk. Placed before it, this middleware
answers an upload from someone who may not register versions of that model with the login redirect, 404 or
403 that the view would give, from the headers alone. The permission test is the view's own `get_model_for`.
"""

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse

from apps.web.errors import error_body
from apps.accounts.authentication import ApiTokenAuthentication
from apps.models.permissions import Action, get_model_for

UPLOAD_PAGE = "versions:upload"
UPLOAD_API = "api:versions"
UPLOAD_SESSION_PAGE = "versions:upload-session"  # the upload page's script: the form's fields, then an upload session
# The routes that take multipart files (HashingUploadHandler spools only these).
UPLOAD_ROUTES = {UPLOAD_PAGE, UPLOAD_SESSION_PAGE, UPLOAD_API}
PAGE_ROUTES = {UPLOAD_PAGE, UPLOAD_SESSION_PAGE, "versions:upload-register"}
# Upload-session routes carry JSON or raw bytes, never multipart files; they are gated all the same.
UPLOAD_SESSION_ROUTES = {
    "versions:upload-register", "api:uploads", "api:upload", "api:upload-register", "api:upload-file", "api:upload-parts", "api:upload-complete",
}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS", "TRACE"}


def is_upload_route(request) -> bool:
    match = getattr(request, "resolver_match", None)
    return match is not None and match.view_name in UPLOAD_ROUTES


def _sends_api_token(request) -> bool:
    scheme = request.META.get("HTTP_AUTHORIZATION", "").split(" ", 1)[0].lower()
    return scheme in ApiTokenAuthentication.keywords


class UploadGateMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        match = getattr(request, "resolver_match", None)
        gated = match is not None and (match.view_name in UPLOAD_ROUTES or match.view_name in UPLOAD_SESSION_ROUTES)
        if request.method in SAFE_METHODS or not gated:
            return None
        name = view_kwargs["name"]
        if request.resolver_match.view_name in PAGE_ROUTES:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            try:
                get_model_for(request.user, name, Action.REGISTER)
            except (Http404, PermissionDenied):
                # Refused: Django renders its 404 / 403 page, whose view runs the CSRF check again (requires_csrf_token),
                # and that check would read the body. The request is decided, so mark its CSRF processing as done.
                request.csrf_processing_done = True
                raise
            return None
        if _sends_api_token(request) or not request.user.is_authenticated:
            # DRF authenticates the token, then the view calls get_model_for, both before it touches request.data;
            # without a token or a session DRF answers 401 from the headers.
            return None
        try:
            get_model_for(request.user, name, Action.REGISTER)
        except Http404 as exc:
            return JsonResponse(error_body("not_found", str(exc)), status=404)
        except PermissionDenied as exc:
            return JsonResponse(error_body("permission_denied", str(exc)), status=403)
        return None
