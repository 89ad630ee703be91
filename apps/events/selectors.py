from django.db.models import Count, Q, QuerySet
from django.http import Http404

from apps.models.models import RegisteredModel

from .models import Delivery, DeliveryStatus, Webhook


def webhooks_for_model(model: RegisteredModel) -> QuerySet[Webhook]:
    """A model's webhooks with their delivery counts, in one query."""
    failing = Q(deliveries__status__in=[DeliveryStatus.FAILED, DeliveryStatus.GAVE_UP])
    return (
        Webhook.objects.filter(model=model)
        .annotate(delivery_count=Count("deliveries"), failing_count=Count("deliveries", filter=failing))
        .order_by("-created_at", "-id")
    )


def webhook_for_model(model: RegisteredModel, webhook_id: int) -> Webhook:
    webhook = Webhook.objects.filter(model=model, pk=webhook_id).first()
    if webhook is None:
        raise Http404(f"Model '{model.name}' has no webhook {webhook_id}.")
    webhook.model = model  # already loaded through the permission helper
    return webhook


def delivery_for_webhook(webhook: Webhook, delivery_id: int) -> Delivery:
    delivery = Delivery.objects.filter(webhook=webhook, pk=delivery_id).first()
    if delivery is None:
        raise Http404(f"Webhook {webhook.pk} has no delivery {delivery_id}.")
    delivery.webhook = webhook
    return delivery


def delivery_log(webhook: Webhook) -> QuerySet[Delivery]:
    """A webhook's deliveries, newest first, with their events (no query per row)."""
    return Delivery.objects.filter(webhook=webhook).select_related("event").order_by("-created_at", "-id")
