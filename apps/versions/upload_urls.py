"""Upload-session routes, mounted under /api/v1/models/<name>/uploads/ in the "api" namespace (registry_site/api_urls.py)."""

from django.contrib.auth.decorators import login_not_required
from django.urls import path

from . import upload_api

# The API authenticates itself (token or session) and answers 401 in JSON; the login redirect is for pages.
urlpatterns = [
    path("", login_not_required(upload_api.upload_sessions), name="uploads"),
    path("<uuid:session_id>/", login_not_required(upload_api.upload_session_detail), name="upload"),
    path("<uuid:session_id>/register/", login_not_required(upload_api.upload_register), name="upload-register"),
    path("<uuid:session_id>/files/<int:index>", login_not_required(upload_api.upload_file), name="upload-file"),
    path("<uuid:session_id>/files/<int:index>/parts/", login_not_required(upload_api.upload_parts), name="upload-parts"),
    path("<uuid:session_id>/files/<int:index>/complete/", login_not_required(upload_api.upload_complete), name="upload-complete"),
]
