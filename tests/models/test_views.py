import pytest

from apps.models.models import RegisteredModel
from apps.models.permissions import Action, can
from apps.models.services import model_create
from tests.factories import register_version
from tests.helpers import queries_for

pytestmark = pytest.mark.django_db


def test_the_list_shows_only_models_the_user_may_view(web_for, model, outsider, owner):
    model_create(name="secret-model", actor=outsider)
    page = web_for(owner).get("/").content.decode()
    assert "sentiment" in page and "secret-model" not in page


def test_the_list_searches_filters_and_pages(web_for, owner):
    for index in range(30):
        created = model_create(name=f"m{index:02d}", actor=owner, tags=["vision"] if index % 2 else ["nlp"])
        if index == 3:
            register_version(created, owner)
    client = web_for(owner)
    page_two = client.get("/?page=2").content.decode()
    assert "m29" in page_two and "m00" not in page_two and "Page 2 of 2" in page_two
    assert "m07" in client.get("/?q=m07").content.decode()
    nlp = client.get("/?tag=nlp").content.decode()
    assert "m00" in nlp and "m01" not in nlp
    drafts = client.get("/?stage=draft").content.decode()
    assert "m03" in drafts and "m04" not in drafts


def test_list_query_count_does_not_grow_with_models(web_for, owner):
    client = web_for(owner)
    for index in range(2):
        register_version(model_create(name=f"a{index}", actor=owner, tags=["t"]), owner)
    few = queries_for(client, "/")
    for index in range(48):
        register_version(model_create(name=f"b{index}", actor=owner, tags=["t", "u"]), owner)
    assert queries_for(client, "/") == few


def test_model_page_query_count_does_not_grow_with_versions(web_for, model, owner):
    client = web_for(owner)
    register_version(model, owner, metrics={"acc": 0.5})
    few = queries_for(client, f"/models/{model.name}/")
    for index in range(30):
        register_version(model, owner, metrics={"acc": index / 100, "f1": 0.1})
    assert queries_for(client, f"/models/{model.name}/") == few


def test_an_outsider_gets_404_on_every_model_page(web_for, model, outsider):
    client = web_for(outsider)
    for url in [f"/models/{model.name}/", f"/models/{model.name}/edit/", f"/models/{model.name}/permissions/", f"/models/{model.name}/versions/new/"]:
        assert client.get(url).status_code == 404, url


def test_a_viewer_gets_403_on_manage_pages(web_for, model, reviewer):
    client = web_for(reviewer)
    assert client.get(f"/models/{model.name}/edit/").status_code == 403
    assert client.post(f"/models/{model.name}/permissions/", {"username": "reviewer", "action": "manage_model"}).status_code == 403
    assert not can(reviewer, Action.MANAGE, model)


def test_the_model_card_is_rendered_without_raw_html(web_for, owner):
    model_create(
        name="xss", actor=owner,
        description="# Card\n<script>alert(1)</script>\n<img src=x onerror=alert(2)>\n[click](javascript:alert(3))",
    )
    page = web_for(owner).get("/models/xss/").content.decode()
    assert "<h1>Card</h1>" in page
    assert "<script>alert(1)" not in page and "<img src=x" not in page and 'href="javascript:' not in page
    assert "&lt;script&gt;" in page


def test_creating_a_model_through_the_form(web_for, owner):
    client = web_for(owner)
    response = client.post("/models/new/", {"name": "churn", "description": "card", "tags": "a, b"})
    assert response.status_code == 302 and response["Location"] == "/models/churn/"
    assert sorted(RegisteredModel.objects.get(name="churn").tags.names()) == ["a", "b"]


def test_the_form_explains_a_duplicate_or_bad_name(web_for, model, owner):
    client = web_for(owner)
    duplicate = client.post("/models/new/", {"name": "SENTIMENT"})
    assert duplicate.status_code == 400 and "already exists" in duplicate.content.decode()
    bad = client.post("/models/new/", {"name": "../x"})
    assert bad.status_code == 400 and "ASCII letters" in bad.content.decode()


def test_a_manager_grants_and_revokes_in_the_ui(web_for, model, owner, outsider):
    client = web_for(owner)
    response = client.post(f"/models/{model.name}/permissions/", {"username": "outsider", "action": "view_registeredmodel"})
    assert response.status_code == 302 and can(outsider, Action.VIEW, model)
    page = client.get(f"/models/{model.name}/permissions/").content.decode()
    assert "outsider" in page
    client.post(f"/models/{model.name}/permissions/revoke/", {"user": outsider.pk, "action": "view_registeredmodel"})
    assert not can(outsider, Action.VIEW, model)


def test_granting_to_an_unknown_user_says_so(web_for, model, owner):
    response = web_for(owner).post(f"/models/{model.name}/permissions/", {"username": "nobody", "action": "view_registeredmodel"})
    assert response.status_code == 400 and "No active user named" in response.content.decode()


def test_editing_a_model_as_manager(web_for, model, owner):
    response = web_for(owner).post(f"/models/{model.name}/edit/", {"description": "updated", "tags": "x"})
    assert response.status_code == 302
    model.refresh_from_db()
    assert model.description == "updated"


def test_a_revoke_with_a_forged_holder_id_is_refused_cleanly(web_for, model, owner):
    response = web_for(owner).post(f"/models/{model.name}/permissions/revoke/", {"user": "abc", "action": "view_registeredmodel"}, follow=True)
    assert response.status_code == 200 and "Unknown user or team" in response.content.decode()
