"""The tags round trip, shared by the PostgreSQL test and the SQLite run in a subprocess (test_tags.py).

Run as a script it sets up a scratch SQLite database from the environment given by the test and runs the trip.
"""

import json
import re

import django
from django.core.files.uploadedfile import SimpleUploadedFile


def upload(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


def tags_on_page(web, url: str) -> list[str]:
    return sorted(re.findall(r'<span class="tag">([^<]*)</span>', web.get(url).content.decode()))


def tags_round_trip(web, api, model_name: str) -> None:
    """Upload page -> database -> API -> edit page -> API -> version page, then API upload -> version page."""
    from apps.versions.models import ModelVersion

    page = f"/models/{model_name}/versions/1/"
    response = web.post(f"/models/{model_name}/versions/new/", {"flavor": "custom", "tags": "nlp, candidate", "files": [upload("a.bin", b"a")]})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert sorted(ModelVersion.objects.get(number=1).tags.names()) == ["candidate", "nlp"]
    assert api.get(f"/api/v1/models/{model_name}/versions/1/").json()["tags"] == ["candidate", "nlp"]
    assert tags_on_page(web, page) == ["candidate", "nlp"]

    edit = web.get(f"/models/{model_name}/versions/1/edit/").content.decode()
    assert 'value="candidate, nlp"' in edit  # the edit form starts from the stored tags ...
    response = web.post(f"/models/{model_name}/versions/1/edit/", {"description": "Now with a card.", "tags": "candidate, nlp"})
    assert response.status_code == 302
    detail = api.get(f"/api/v1/models/{model_name}/versions/1/").json()
    assert detail["description"] == "Now with a card." and detail["tags"] == ["candidate", "nlp"]  # ... so editing the text keeps them

    web.post(f"/models/{model_name}/versions/1/edit/", {"description": "Now with a card.", "tags": "nlp, shipped"})
    assert api.get(f"/api/v1/models/{model_name}/versions/1/").json()["tags"] == ["nlp", "shipped"]
    assert tags_on_page(web, page) == ["nlp", "shipped"]

    response = api.post(
        f"/api/v1/models/{model_name}/versions/",
        {"files": [upload("b.bin", b"b")], "metadata": json.dumps({"tags": ["from-api", "nlp"]})},
        format="multipart",
    )
    assert response.status_code == 201 and response.json()["tags"] == ["from-api", "nlp"]
    assert tags_on_page(web, f"/models/{model_name}/versions/2/") == ["from-api", "nlp"]
    assert sorted(ModelVersion.objects.get(number=2).tags.names()) == ["from-api", "nlp"]
    listed = api.get(f"/api/v1/models/{model_name}/versions/").json()["results"]
    assert {item["number"]: item["tags"] for item in listed} == {1: ["nlp", "shipped"], 2: ["from-api", "nlp"]}


def main() -> None:
    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from rest_framework.test import APIClient

    from apps.accounts.models import TokenScope

    from apps.accounts.services import api_token_create
    from apps.models.services import model_create

    assert connection.vendor == "sqlite", connection.vendor
    call_command("migrate", verbosity=0)
    owner = get_user_model().objects.create_user(username="owner", password="pw-owner")
    model_create(name="sentiment", actor=owner)
    web = Client()
    web.force_login(owner)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token_create(user=owner, name='test', scope=TokenScope.FULL)[1]}")
    tags_round_trip(web, api, "sentiment")
    print("round trip passed on", connection.vendor)


if __name__ == "__main__":
    main()
