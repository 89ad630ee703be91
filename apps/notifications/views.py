from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from .forms import EmailPreferencesForm
from .selectors import DEFAULT_SORT, SORT_LABELS, email_kinds, notifications_for
from .services import email_preferences_update, notification_mark_read

PAGE_SIZE = 25


@require_GET
def notification_list(request: HttpRequest) -> HttpResponse:
    search = request.GET.get("q", "").strip()
    sort = request.GET.get("sort") if request.GET.get("sort") in SORT_LABELS else DEFAULT_SORT
    unread_only = request.GET.get("unread") == "1"
    notifications = notifications_for(request.user, search=search, sort=sort, unread_only=unread_only)
    page = Paginator(notifications, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"page": page, "search": search, "sort": sort, "sorts": SORT_LABELS, "unread_only": unread_only}
    return render(request, "notifications/notification_list.html", context)


@require_POST
def mark_read(request: HttpRequest) -> HttpResponse:
    """Mark one notification read (`id`), or all of them (`all`); back to the list as it was."""
    ids = [int(value) for value in request.POST.getlist("id") if value.isdigit()]
    if request.POST.get("all"):
        changed = notification_mark_read(user=request.user)
        messages.success(request, f"Marked {changed} notification{'' if changed == 1 else 's'} read.")
    elif ids:
        notification_mark_read(user=request.user, notification_ids=ids)
    else:
        messages.error(request, "Choose a notification to mark read, or use “Mark all read”.")
    back = request.POST.get("query", "")
    return redirect(reverse("notifications:list") + (f"?{back}" if back else ""))


@require_http_methods(["GET", "POST"])
def email_settings(request: HttpRequest) -> HttpResponse:
    form = EmailPreferencesForm(request.POST or None, initial={"email_kinds": sorted(email_kinds(request.user))})
    if request.method == "POST" and form.is_valid():
        email_preferences_update(user=request.user, email_kinds=form.cleaned_data["email_kinds"])
        messages.success(request, "Email settings saved.")
        return redirect("notifications:settings")
    return render(request, "notifications/email_settings.html", {"form": form}, status=400 if form.errors else 200)
