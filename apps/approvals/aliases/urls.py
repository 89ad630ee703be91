"""Alias pages, mounted at /models/<name>/aliases/ by registry_site/urls.py."""

from django.urls import path

from . import views

app_name = "aliases"

urlpatterns = [
    path("", views.alias_set_view, name="set"),
    path("<str:alias>/", views.alias_detail, name="detail"),
    path("<str:alias>/delete/", views.alias_delete_view, name="delete"),
    path("<str:alias>/rollback/", views.alias_rollback_view, name="rollback"),
    path("<str:alias>/policy/", views.alias_policy_view, name="policy"),
]
