from axes.helpers import get_cool_off
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.forms.forms import NON_FIELD_ERRORS
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.response import TemplateResponse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from .forms import ApiTokenForm
from .models import ApiToken
from .services import api_token_create, api_token_revoke


@login_not_required
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


def lockout_message(request: HttpRequest) -> tuple[str, int]:
    """What a locked-out log-in is told, and the Retry-After seconds.

    Each failure during a lockout restarts the cool-off (axes' AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT), so
    the time given is when the lockout ends at the latest; it ends earlier only when older failures age out first.
    """
    cool_off = get_cool_off(request)
    seconds = int(cool_off.total_seconds())
    retry_at = timezone.now() + cool_off
    minutes = max(1, round(seconds / 60))
    return (
        f"Too many failed log-ins for this account or from your address. Try again after {retry_at:%H:%M} UTC"
        f" (in {minutes} minute{'s' if minutes != 1 else ''}); until then even the right password is refused.",
        seconds,
    )


def login_locked_out(request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict | None = None) -> HttpResponse:
    """axes' lockout response (AXES_LOCKOUT_CALLABLE), for our log-in page and the admin's alike: the page the
    view rendered, its "wrong password" error replaced by when to try again, answered 429 with Retry-After."""
    message, seconds = lockout_message(request)
    context = getattr(original_response, "context_data", None) or {}
    form = context.get("form")
    if isinstance(original_response, TemplateResponse) and form is not None:
        form.errors.clear()
        form.errors[NON_FIELD_ERRORS] = form.error_class([message])
        context["lockout_message"] = message
        response = HttpResponse(original_response.rendered_content, status=429)
    else:
        response = HttpResponse(message, status=429, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(seconds)
    return response


@require_http_methods(["GET", "POST"])
def token_list(request: HttpRequest) -> HttpResponse:
    form = ApiTokenForm(request.POST or None, user=request.user)
    new_secret = None
    if request.method == "POST" and form.is_valid():
        token, new_secret = api_token_create(user=request.user, **form.token_options())
        messages.success(request, f"Token '{token.name}' created. Copy it now: it will not be shown again.")
        form = ApiTokenForm(user=request.user)
    tokens = ApiToken.objects.filter(user=request.user).prefetch_related("allowed_models")
    context = {"form": form, "tokens": tokens, "new_secret": new_secret, "now": timezone.now()}
    return render(request, "accounts/token_list.html", context)


@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    api_token_revoke(token=token, actor=request.user)
    messages.success(request, f"Token '{token.name}' revoked.")
    return redirect("accounts:tokens")
