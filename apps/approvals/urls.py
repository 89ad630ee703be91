from django.urls import path

from . import views

app_name = "approvals"

urlpatterns = [
    path("approvals/", views.inbox, name="inbox"),
    path("approvals/<int:pk>/", views.review, name="review"),
    path("approvals/<int:pk>/approve/", views.approve, name="approve"),
    path("approvals/<int:pk>/reject/", views.reject, name="reject"),
    path("approvals/<int:pk>/withdraw/", views.withdraw, name="withdraw"),
    path("approvals/<int:pk>/override/", views.override, name="override"),
    path("models/<str:name>/rollback/", views.rollback, name="rollback"),
    path("models/<str:name>/history/", views.pointer_history, name="history"),
    path("models/<str:name>/approval-policy/", views.policy_edit, name="policy"),
]
