from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.web.forms import add_validation_errors
from apps.models.permissions import Action, get_model_for

from .forms import WebhookForm
from .models import EventType
from .selectors import delivery_for_webhook, delivery_log, webhook_for_model, webhooks_for_model
from .services import delivery_redeliver, webhook_create, webhook_delete, webhook_set_active

PAGE_SIZE = 25


@require_http_methods(["GET", "POST"])
def webhook_list(request: HttpRequest, name: str) -> HttpResponse:
    model = get_model_for(request.user, name, Action.MANAGE)
    form = WebhookForm(request.POST or None)
    new_secret = None
    if request.method == "POST" and form.is_valid():
        try:
            webhook, new_secret = webhook_create(model=model, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            add_validation_errors(form, exc)
        else:
            messages.success(request, "Webhook created." + (" Copy its secret now: it will not be shown again." if new_secret else ""))
            if new_secret is None:
                return redirect("events:webhooks", name=model.name)
            form = WebhookForm()
    context = {"model": model, "form": form, "webhooks": webhooks_for_model(model), "new_secret": new_secret, "labels": dict(EventType.choices)}
    return render(request, "events/webhook_list.html", context, status=400 if form.errors else 200)


@require_GET
def webhook_detail(request: HttpRequest, name: str, webhook_id: int) -> HttpResponse:
    model = get_model_for(request.user, name, Action.MANAGE)
    webhook = webhook_for_model(model, webhook_id)
    page = Paginator(delivery_log(webhook), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "events/webhook_detail.html", {"model": model, "webhook": webhook, "page": page, "labels": dict(EventType.choices)})


@require_POST
def webhook_active_view(request: HttpRequest, name: str, webhook_id: int) -> HttpResponse:
    model = get_model_for(request.user, name, Action.MANAGE)
    webhook = webhook_set_active(webhook=webhook_for_model(model, webhook_id), actor=request.user, active=request.POST.get("active") == "1")
    messages.success(request, "Webhook resumed." if webhook.active else "Webhook paused: no new deliveries until it is resumed.")
    return redirect("events:webhooks", name=model.name)


@require_POST
def webhook_delete_view(request: HttpRequest, name: str, webhook_id: int) -> HttpResponse:
    model = get_model_for(request.user, name, Action.MANAGE)
    webhook_delete(webhook=webhook_for_model(model, webhook_id), actor=request.user)
    messages.success(request, "Webhook deleted.")
    return redirect("events:webhooks", name=model.name)


@require_POST
def delivery_redeliver_view(request: HttpRequest, name: str, webhook_id: int, delivery_id: int) -> HttpResponse:
    model = get_model_for(request.user, name, Action.MANAGE)
    delivery = delivery_for_webhook(webhook_for_model(model, webhook_id), delivery_id)
    try:
        fresh = delivery_redeliver(delivery=delivery, actor=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Event {delivery.event_id} queued for delivery again (delivery {fresh.pk}).")
    return redirect("events:webhook", name=model.name, webhook_id=webhook_id)
