"""The models list and a model's versions table: sorted by any column or metric in the database, metric columns chosen
in the URL and remembered, bulk archive through transition requests; query counts flat."""

import pytest

from apps.approvals.models import RequestStatus, TransitionRequest
from apps.models.services import model_create
from apps.versions.models import ModelVersion
from tests.factories import promote, register_version
from tests.helpers import queries_for

pytestmark = pytest.mark.django_db


def numbers_in_table(html: str) -> list[int]:
    table = html[html.index('id="versions-table"'):]
    table = table[: table.index("</table>")]
    return [int(part.split("/")[0]) for part in table.split('/versions/')[1:]]


def test_versions_sort_by_a_metric_in_both_directions_with_versions_lacking_it_last(web_for, owner, model):
    for accuracy in (0.7, None, 0.9, 0.8):
        register_version(model, owner, metrics={"accuracy": accuracy, "f1": 0.5} if accuracy is not None else {"f1": 0.1})
    client = web_for(owner)
    assert numbers_in_table(client.get(f"/models/{model.name}/?sort=-metric.accuracy").content.decode()) == [3, 4, 1, 2]
    assert numbers_in_table(client.get(f"/models/{model.name}/?sort=metric.accuracy").content.decode()) == [1, 4, 3, 2]
    assert numbers_in_table(client.get(f"/models/{model.name}/?sort=number").content.decode()) == [1, 2, 3, 4]
    page = client.get(f"/models/{model.name}/?sort=-metric.accuracy").content.decode()
    assert 'aria-sort="descending"' in page and "sort=metric.accuracy" in page  # the header now sorts the other way


def test_sorting_by_a_metric_is_paged_in_the_database(web_for, owner, model, monkeypatch):
    monkeypatch.setattr("apps.models.views.PAGE_SIZE", 4)
    for index in range(7):
        register_version(model, owner, metrics={"loss": (index * 3) % 7})
    client = web_for(owner)
    first = numbers_in_table(client.get(f"/models/{model.name}/?sort=metric.loss").content.decode())
    second = numbers_in_table(client.get(f"/models/{model.name}/?sort=metric.loss&page=2").content.decode())
    losses = dict(ModelVersion.objects.filter(model=model).values_list("number", "metrics__value"))
    assert len(first) == 4 and len(second) == 3
    assert [losses[n] for n in first + second] == sorted(losses.values())


def test_metric_columns_come_from_the_url_and_are_remembered_for_the_model(web_for, owner, model):
    register_version(model, owner, metrics={"accuracy": 0.91, "f1": 0.42, "auc": 0.77})
    client = web_for(owner)
    chosen = client.get(f"/models/{model.name}/?metrics=f1,auc").content.decode()
    header = chosen[chosen.index('id="versions-table"'):chosen.index("</thead>", chosen.index('id="versions-table"'))]
    assert "f1" in header and "auc" in header and "accuracy" not in header
    later = client.get(f"/models/{model.name}/").content.decode()  # no ?metrics=: the last choice for this model
    header = later[later.index('id="versions-table"'):later.index("</thead>", later.index('id="versions-table"'))]
    assert "f1" in header and "auc" in header and "accuracy" not in header and "0.42" in later
    none = client.get(f"/models/{model.name}/?metrics=").content.decode()
    assert "0.42" not in none


def test_bad_sort_and_metric_names_are_a_400_saying_what_to_use(web_for, owner, model):
    register_version(model, owner, metrics={"accuracy": 0.9})
    client = web_for(owner)
    response = client.get(f"/models/{model.name}/?sort=price")
    assert response.status_code == 400 and "Cannot sort by &#x27;price&#x27;" in response.content.decode()
    assert client.get(f"/models/{model.name}/?metrics=a%20b").status_code == 400
    assert client.get(f"/models/{model.name}/?stage=prod").status_code == 400
    assert client.get("/?sort=-nothing").status_code == 400


def test_the_models_list_sorts_by_the_production_versions_metric(web_for, owner, reviewer):
    client = web_for(owner)
    for name, accuracy in (("alpha", 0.8), ("beta", 0.95), ("gamma", None), ("delta", 0.6)):
        created = model_create(name=name, actor=owner)
        if accuracy is not None:
            promote(register_version(created, owner, metrics={"accuracy": accuracy}), requester=owner, approver=owner_other(reviewer, created, owner))
    page = client.get("/?sort=-metric.accuracy&metrics=accuracy").content.decode()
    order = [name for name in ("alpha", "beta", "gamma", "delta") if f'href="/models/{name}/"' in page]
    positions = sorted(order, key=lambda name: page.index(f'href="/models/{name}/"'))
    assert positions == ["beta", "alpha", "delta", "gamma"] and "0.95" in page
    by_name = client.get("/?sort=-name").content.decode()
    assert by_name.index('href="/models/gamma/"') < by_name.index('href="/models/alpha/"')


def owner_other(reviewer, model, owner):
    from apps.models.permissions import Action
    from apps.models.services import model_permission_grant

    model_permission_grant(model=model, actor=owner, action=Action.VIEW, user=reviewer)
    model_permission_grant(model=model, actor=owner, action=Action.APPROVE_TRANSITION, user=reviewer)
    return reviewer


def test_table_query_counts_do_not_grow_with_versions_or_models(web_for, owner, model):
    client = web_for(owner)
    register_version(model, owner, metrics={"acc": 0.5, "f1": 0.2})
    url = f"/models/{model.name}/?sort=-metric.acc&metrics=acc,f1"
    client.get(url), client.get("/?metrics=acc,f1")  # the first choice is written to the session; later ones are not
    few_versions, few_models = queries_for(client, url), queries_for(client, "/?sort=-metric.acc&metrics=acc,f1")
    for index in range(8):
        register_version(model, owner, metrics={"acc": index / 100, "f1": 0.1, f"m{index}": 1})
        model_create(name=f"other-{index}", actor=owner)
    assert queries_for(client, url) == few_versions
    assert queries_for(client, "/?sort=-metric.acc&metrics=acc,f1") == few_models


def test_bulk_archive_asks_first_then_archives_drafts_and_requests_review_for_production(web_for, owner, reviewer, model):
    draft, staged, live = (register_version(model, owner) for _ in range(3))
    promote(live, requester=owner, approver=reviewer)
    promote(staged, requester=owner, approver=reviewer)  # staged is now production, live archived
    staged.refresh_from_db()
    other = register_version(model, owner)
    client = web_for(owner)
    picks = [f"{model.name}:{draft.number}", f"{model.name}:{other.number}", str(staged.number)]
    confirm = client.get(f"/models/{model.name}/versions/archive-selected/", {"v": picks}).content.decode()
    assert "archived at once" in confirm and "taken out of production at once" in confirm
    client.post(f"/models/{model.name}/versions/archive-selected/", {"v": picks, "justification": "superseded"})
    stages = dict(ModelVersion.objects.filter(model=model).values_list("number", "stage"))
    assert stages[draft.number] == stages[other.number] == stages[staged.number] == "archived"  # the owner manages the model

    # A reviewer who may only request: production is not taken down, a request for review is opened.
    fresh = register_version(model, owner)
    promote(fresh, requester=owner, approver=reviewer)
    from apps.models.permissions import Action
    from apps.models.services import model_permission_grant

    model_permission_grant(model=model, actor=owner, action=Action.REQUEST_TRANSITION, user=reviewer)
    reviewer_client = web_for(reviewer)
    plan = reviewer_client.get(f"/models/{model.name}/versions/archive-selected/", {"v": [str(fresh.number)]}).content.decode()
    assert "a request for review is opened" in plan
    reviewer_client.post(f"/models/{model.name}/versions/archive-selected/", {"v": [str(fresh.number)], "justification": "retire it"})
    fresh.refresh_from_db()
    assert fresh.stage == "production"
    assert TransitionRequest.objects.get(version=fresh, to_stage="archived").status == RequestStatus.PENDING


def test_bulk_archive_is_all_or_nothing_and_refuses_bad_picks(web_for, owner, model):
    first, second = register_version(model, owner), register_version(model, owner)
    client = web_for(owner)
    client.post(f"/models/{model.name}/versions/archive-selected/", {"v": [str(first.number)], "justification": "old"})
    response = client.post(f"/models/{model.name}/versions/archive-selected/", {"v": [str(first.number), str(second.number)], "justification": "old"})
    assert response.status_code == 400 and "v1:" in response.content.decode()
    second.refresh_from_db()
    assert second.stage == "draft"
    assert client.post(f"/models/{model.name}/versions/archive-selected/", {"v": ["other:1"], "justification": "x"}).status_code == 400
    assert client.post(f"/models/{model.name}/versions/archive-selected/", {"v": ["99"], "justification": "x"}).status_code == 400
    assert client.post(f"/models/{model.name}/versions/archive-selected/", {"v": [str(second.number)]}).status_code == 400
    assert client.get(f"/models/{model.name}/versions/archive-selected/").status_code == 200


def test_bulk_archive_needs_the_request_permission(web_for, model, owner, reviewer, outsider):
    version = register_version(model, owner)
    assert web_for(outsider).post(f"/models/{model.name}/versions/archive-selected/", {"v": ["1"], "justification": "x"}).status_code == 404
    assert web_for(reviewer).post(f"/models/{model.name}/versions/archive-selected/", {"v": ["1"], "justification": "x"}).status_code == 403
    version.refresh_from_db()
    assert version.stage == "draft"


def test_the_archive_page_query_count_does_not_grow_with_the_versions_picked(web_for, owner, model):
    for _ in range(6):
        register_version(model, owner)
    client = web_for(owner)
    few = queries_for(client, f"/models/{model.name}/versions/archive-selected/?v={model.name}:1")
    many = queries_for(client, f"/models/{model.name}/versions/archive-selected/?" + "&".join(f"v={model.name}:{n}" for n in range(1, 7)))
    assert many == few
