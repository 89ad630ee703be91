"""Deep pages cost what the first does: a model's versions are paged by keyset (version number) in the API (`cursor`
links) and on the model page (first / previous / next / last), `page=` still works, and counts past a threshold are
PostgreSQL's estimate, said as such."""

import pytest

from apps.versions.models import ModelVersion
from apps.web import keyset
from apps.web.keyset import Position, counted
from tests.catalog.test_tables import numbers_in_table
from tests.factories import register_version
from tests.helpers import queries_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def seven(model, owner):
    for _ in range(7):
        register_version(model, owner, files={"a.bin": b"a"})
    return model


def test_the_api_follows_cursor_links_through_every_version_both_ways(seven, api_for, owner):
    api = api_for(owner)
    url, seen, pages = f"/api/v1/models/{seven.name}/versions/?page_size=3", [], []
    while url:
        body = api.get(url).json()
        assert body["count"] == 7 and "cursor=" in (body["next"] or "cursor=")
        seen += [item["number"] for item in body["results"]]
        pages.append(body)
        url = body["next"]
    assert seen == [7, 6, 5, 4, 3, 2, 1] and pages[0]["previous"] is None
    back = api.get(pages[-1]["previous"]).json()
    assert [item["number"] for item in back["results"]] == [4, 3, 2] and back["next"]
    oldest_first = api.get(f"/api/v1/models/{seven.name}/versions/?page_size=3&ordering=number").json()
    assert [item["number"] for item in oldest_first["results"]] == [1, 2, 3]
    last = api.get(f"/api/v1/models/{seven.name}/versions/?page_size=3&cursor={Position(last=True).encode()}").json()
    assert [item["number"] for item in last["results"]] == [3, 2, 1] and last["next"] is None and last["previous"]


def test_page_numbers_still_work_and_bad_cursors_are_a_400(seven, api_for, owner):
    api = api_for(owner)
    body = api.get(f"/api/v1/models/{seven.name}/versions/?page_size=3&page=2").json()
    assert [item["number"] for item in body["results"]] == [4, 3, 2] and body["next"].endswith("page=3&page_size=3")
    by_metric = api.get(f"/api/v1/models/{seven.name}/versions/?page_size=3&ordering=created").json()
    assert "page=2" in by_metric["next"]  # other orders page by number
    for bad in ("zzz", Position(after=1).encode() + "x", "eyJhIjogIjMifQ"):  # not base64 JSON; garbage; a string key
        response = api.get(f"/api/v1/models/{seven.name}/versions/?cursor={bad}")
        assert response.status_code == 400 and "cursor" in response.json()["error"]["fields"]
    both = api.get(f"/api/v1/models/{seven.name}/versions/?cursor={Position(after=3).encode()}&page=2")
    assert both.status_code == 400


def test_the_model_page_pages_by_keyset_with_first_previous_next_and_last(seven, web_for, owner, monkeypatch):
    monkeypatch.setattr("apps.models.views.PAGE_SIZE", 3)
    client = web_for(owner)
    first = client.get(f"/models/{seven.name}/").content.decode()
    assert numbers_in_table(first) == [7, 6, 5] and "?after=5" in first and "?last=1" in first and "First" not in first
    assert numbers_in_table(client.get(f"/models/{seven.name}/?after=5").content.decode()) == [4, 3, 2]
    last = client.get(f"/models/{seven.name}/?last=1").content.decode()
    assert numbers_in_table(last) == [3, 2, 1] and "?before=3" in last and "Next" not in last and "7 in all" in last
    assert numbers_in_table(client.get(f"/models/{seven.name}/?before=3").content.decode()) == [6, 5, 4]
    assert numbers_in_table(client.get(f"/models/{seven.name}/?sort=number&after=3").content.decode()) == [4, 5, 6]
    assert numbers_in_table(client.get(f"/models/{seven.name}/?page=3").content.decode()) == [1]  # old links
    assert numbers_in_table(client.get(f"/models/{seven.name}/?after=x").content.decode()) == [7, 6, 5]  # forgiven


def test_deep_pages_run_the_queries_of_the_first(seven, web_for, api_for, owner, monkeypatch):
    monkeypatch.setattr("apps.models.views.PAGE_SIZE", 3)
    client, api = web_for(owner), api_for(owner)
    api.get(f"/api/v1/models/{seven.name}/versions/")  # the token's first use is stamped
    assert queries_for(client, f"/models/{seven.name}/?last=1") == queries_for(client, f"/models/{seven.name}/")
    deep = f"/api/v1/models/{seven.name}/versions/?page_size=3&cursor={Position(last=True).encode()}"
    assert queries_for(api, deep) == queries_for(api, f"/api/v1/models/{seven.name}/versions/?page_size=3")


@pytest.mark.postgres
def test_counts_past_the_threshold_are_the_planners_estimate_and_say_so(seven, web_for, owner, monkeypatch):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {ModelVersion._meta.db_table}")
    assert counted(ModelVersion.objects.filter(model=seven), estimate_above=2)[1] is True
    assert counted(ModelVersion.objects.filter(model=seven), estimate_above=100) == (7, False)
    monkeypatch.setattr(keyset, "COUNT_ESTIMATE_ABOVE", 2)
    monkeypatch.setattr("apps.models.views.PAGE_SIZE", 3)
    assert "about " in web_for(owner).get(f"/models/{seven.name}/").content.decode()
