from django.urls import path

from . import views

app_name = "lineage"

urlpatterns = [
    path("datasets/", views.dataset_list, name="datasets"),
    path("datasets/<int:pk>/", views.dataset_detail, name="dataset"),
    path("models/<str:name>/versions/<int:number>/lineage/", views.version_lineage, name="version"),
]
