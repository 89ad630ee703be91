from django.urls import path

from . import views

app_name = "events"

urlpatterns = [
    path("", views.webhook_list, name="webhooks"),
    path("<int:webhook_id>/", views.webhook_detail, name="webhook"),
    path("<int:webhook_id>/active/", views.webhook_active_view, name="webhook-active"),
    path("<int:webhook_id>/delete/", views.webhook_delete_view, name="webhook-delete"),
    path("<int:webhook_id>/deliveries/<int:delivery_id>/redeliver/", views.delivery_redeliver_view, name="redeliver"),
]
