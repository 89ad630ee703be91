from django.urls import path

from . import views

app_name = "models"

urlpatterns = [
    path("", views.model_list, name="list"),
    path("models/new/", views.model_create_view, name="create"),
    path("models/<str:name>/", views.model_detail, name="detail"),
    path("models/<str:name>/edit/", views.model_edit, name="edit"),
    path("models/<str:name>/permissions/", views.model_permissions, name="permissions"),
    path("models/<str:name>/permissions/revoke/", views.model_permission_revoke_view, name="permission-revoke"),
]
