from django.urls import path

from . import views

app_name = "versions"

urlpatterns = [
    path("new/", views.version_upload, name="upload"),
    path("new/session/", views.version_upload_session, name="upload-session"),
    path("new/session/<uuid:session_id>/register/", views.version_upload_register, name="upload-register"),
    path("archive-selected/", views.versions_archive_view, name="archive-selected"),
    path("<int:number>/", views.version_detail, name="detail"),
    path("<int:number>/edit/", views.version_edit, name="edit"),
    path("<int:number>/files/", views.version_files, name="files"),
    path("<int:number>/transition/", views.version_transition_view, name="transition"),
    path("<int:number>/artifacts/<path:path>", views.artifact_download, name="artifact"),
]

# Mounted at the site root by registry_site/urls.py: a comparison may span models, so it sits under no model's URL.
compare_urlpatterns = ([path("compare/", views.version_compare, name="page")], "compare")
