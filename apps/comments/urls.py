from django.urls import path

from . import views

app_name = "comments"

urlpatterns = [
    path("models/<str:name>/versions/<int:number>/comments/", views.version_comment, name="version"),
    path("approvals/<int:pk>/comments/", views.request_comment, name="request"),
    path("comments/<int:pk>/edit/", views.comment_edit_view, name="edit"),
    path("comments/<int:pk>/delete/", views.comment_delete_view, name="delete"),
]
