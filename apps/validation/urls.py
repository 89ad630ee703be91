from django.urls import path

from . import views

app_name = "validation"

urlpatterns = [
    path("policy/", views.policy_edit, name="policy"),
    path("versions/<int:number>/validation/", views.job_panel, name="panel"),
    path("versions/<int:number>/validation/rerun/", views.job_rerun, name="rerun"),
]
