"""Baseline WSGI app for bench/stage_lookup.py.

The project's settings and middleware stack exactly as `registry_site.wsgi` loads them (the same environment
variables pick them), but ROOT_URLCONF points at this module, whose one view does one indexed query (the model
by its unique name) and answers a small JSON body. Served by gunicorn with the same options as the real app:

    gunicorn --chdir /work/main --pythonpath bench baseline_wsgi:application
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registry_site.settings.production")

from django.conf import settings  # noqa: E402

settings.ROOT_URLCONF = __name__  # before the first request resolves a URL; nothing else changes

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()

from django.contrib.auth.decorators import login_not_required  # noqa: E402
from django.http import JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402

from apps.models.models import RegisteredModel  # noqa: E402


@login_not_required
def model_by_name(request, name: str):
    row = RegisteredModel.objects.filter(name=name).values("id", "name", "last_version_number").first()  # unique index
    if row is None:
        return JsonResponse({"error": "not found"}, status=404)
    return JsonResponse(row)


urlpatterns = [path("baseline/models/<str:name>/", model_by_name)]
