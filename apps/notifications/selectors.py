from django.db.models import F, Q, QuerySet

from .models import EmailPreference, Kind, Notification

# The notifications page's sort choices: ?sort=<key> -> ordering.
SORTS = {
    "newest": ("-created_at", "-id"),
    "oldest": ("created_at", "id"),
    "model": ("model__name", "-created_at", "-id"),
    "kind": ("kind", "-created_at", "-id"),
}
SORT_LABELS = {"newest": "Newest first", "oldest": "Oldest first", "model": "Model", "kind": "Kind", "unread": "Unread first"}
DEFAULT_SORT = "newest"


def notifications_for(user, *, search: str = "", sort: str = DEFAULT_SORT, unread_only: bool = False) -> QuerySet[Notification]:
    """The user's own notifications, searched in title, text, model name and actor, in one query per page."""
    queryset = Notification.objects.filter(recipient=user).select_related("model")
    if search:
        queryset = queryset.filter(
            Q(title__icontains=search) | Q(body__icontains=search) | Q(model__name__icontains=search) | Q(actor_name__icontains=search)
        )
    if unread_only:
        queryset = queryset.filter(read_at__isnull=True)
    if sort == "unread":
        return queryset.order_by(F("read_at").desc(nulls_first=True), "-created_at", "-id")
    return queryset.order_by(*SORTS.get(sort, SORTS[DEFAULT_SORT]))


def email_kinds(user) -> set[str]:
    """The kinds the user gets emails for (all but those turned off)."""
    off = set(EmailPreference.objects.filter(user=user, email=False).values_list("kind", flat=True))
    return set(Kind.values) - off
