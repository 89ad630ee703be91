import html
import json
import re

import pytest
from django.contrib.auth.models import Group

from apps.lineage.models import Dataset, TrainingRun, VersionParent
from apps.versions.models import ModelVersion
from tests.factories import register_version, upload
from tests.helpers import queries_for

from .conftest import DATASET, parent
from .graphs import bulk_versions, chain, fan_out, link, trained_on

pytestmark = pytest.mark.django_db


def _json_script(page: str, element_id: str):
    found = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', page, re.DOTALL)
    assert found, f"no json_script {element_id}"
    return json.loads(found.group(1))


# -- datasets list and the "New dataset" form ------------------------------------------------------------------


def test_the_datasets_page_lists_datasets_with_the_versions_the_user_may_see(web_for, reviewer, model, owner, secret, stranger):
    register_version(model, owner, datasets=[DATASET])
    register_version(secret, stranger, datasets=[DATASET])
    page = web_for(reviewer).get("/datasets/").content.decode()
    assert "imdb" in page and "s3://data/imdb" in page
    assert re.search(r'<td class="num">1</td>', page)  # the secret model's use is not counted for the reviewer


def test_any_logged_in_user_may_register_a_dataset_through_the_form(web_for, outsider):
    response = web_for(outsider).post("/datasets/", {"name": "wiki", "uri": "s3://data/wiki", "digest": "2024-06", "size_bytes": "2048", "description": "dump"}, follow=True)
    dataset = Dataset.objects.get()
    assert response.redirect_chain[-1][0] == f"/datasets/{dataset.pk}/"
    assert (dataset.name, dataset.size_bytes, dataset.created_by) == ("wiki", 2048, outsider)
    assert "registered" in response.content.decode()


def test_the_same_uri_and_digest_leads_a_team_mate_to_the_existing_dataset(web_for, owner, reviewer, team):
    web_for(owner).post("/datasets/", {"name": "wiki", "uri": "s3://data/wiki", "digest": "v1", "team": team.pk})
    response = web_for(reviewer).post("/datasets/", {"name": "wiki again", "uri": "s3://data/wiki", "digest": "v1"}, follow=True)
    assert Dataset.objects.count() == 1
    assert "already registered" in response.content.decode() and "on its own by owner for team nlp-team" in response.content.decode()


def test_the_same_uri_and_digest_hidden_from_the_user_is_a_form_error_naming_nothing(web_for, owner, outsider):
    web_for(owner).post("/datasets/", {"name": "wiki", "uri": "s3://data/wiki", "digest": "v1", "description": "the dump"})
    response = web_for(outsider).post("/datasets/", {"name": "mine", "uri": "s3://data/wiki", "digest": "v1"})
    page = response.content.decode()
    assert response.status_code == 400 and "already registered by someone whose records you may not see" in page
    assert "the dump" not in page and ">wiki<" not in page and Dataset.objects.get().name == "wiki"


def test_the_dataset_form_offers_only_the_users_teams(web_for, reviewer, team):
    Group.objects.create(name="hr")
    page = web_for(reviewer).get("/datasets/").content.decode()
    assert "nlp-team" in page and "hr</option>" not in page
    response = web_for(reviewer).post("/datasets/", {"name": "x", "uri": "s3://x", "team": Group.objects.get(name="hr").pk})
    assert response.status_code == 400 and not Dataset.objects.exists()


def test_the_dataset_form_shows_errors_and_stores_nothing(web_for, owner):
    response = web_for(owner).post("/datasets/", {"name": "", "uri": "s3://x", "size_bytes": "-5"})
    assert response.status_code == 400
    page = response.content.decode()
    assert "This field is required." in page and "greater than or equal to 0" in page
    assert not Dataset.objects.exists()


def test_the_datasets_page_query_count_does_not_grow_with_datasets(web_for, owner, model):
    client = web_for(owner)
    register_version(model, owner, datasets=[DATASET])
    few = queries_for(client, "/datasets/")
    for index in range(15):
        Dataset.objects.create(name=f"d{index}", uri=f"s3://d/{index}", size_bytes=index)
    assert queries_for(client, "/datasets/") == few


# -- a dataset's page: its impact ------------------------------------------------------------------------------


def test_a_datasets_page_lists_every_affected_version_through_fine_tuning(web_for, owner, model):
    register_version(model, owner, datasets=[DATASET])
    register_version(model, owner, parents=[parent(model, 1)])
    register_version(model, owner, parents=[parent(model, 2)])
    dataset = Dataset.objects.get()
    page = web_for(owner).get(f"/datasets/{dataset.pk}/").content.decode()
    assert "Impact: versions trained or evaluated on it (3)" in page
    assert "training data" in page and "fine-tuned from <a href=\"/models/sentiment/versions/2/\">sentiment v2</a>" in page


def test_an_outsider_gets_404_for_a_dataset_only_versions_they_cannot_view_use(web_for, outsider, owner, model):
    register_version(model, owner, datasets=[DATASET])
    dataset = Dataset.objects.get()
    response = web_for(outsider).get(f"/datasets/{dataset.pk}/")
    assert response.status_code == 404 and "s3://data/imdb" not in response.content.decode()


def test_a_missing_dataset_is_a_404(web_for, owner):
    assert web_for(owner).get("/datasets/999/").status_code == 404


def test_the_dataset_page_query_count_does_not_grow_with_depth(web_for, reviewer, model):
    client = web_for(reviewer)
    dataset = Dataset.objects.create(name="d", uri="s3://d")
    root = bulk_versions(model, 1)[0]
    trained_on(dataset, [root])
    chain(model, 2, root=root)
    few = queries_for(client, f"/datasets/{dataset.pk}/")
    chain(model, 120, root=root)
    assert queries_for(client, f"/datasets/{dataset.pk}/") == few


# -- a version's lineage page ----------------------------------------------------------------------------------


def test_the_lineage_page_draws_the_graph_and_lists_its_nodes(web_for, owner, model):
    register_version(model, owner, datasets=[DATASET], code={"repository": "https://git.example.com/nlp.git", "commit": "abcdef1"})
    register_version(model, owner, parents=[parent(model, 1)])
    register_version(model, owner, parents=[parent(model, 2, "distilled_from")])
    page = web_for(owner).get("/models/sentiment/versions/2/lineage/").content.decode()
    data = _json_script(page, "lineage-data")
    assert {n["label"] for n in data["nodes"]} == {"sentiment v1", "sentiment v2", "sentiment v3", "imdb@sha256:aa11", "nlp @ abcdef1"}
    by_label = {n["label"]: n for n in data["nodes"]}
    assert by_label["sentiment v1"]["url"] == "/models/sentiment/versions/1/" and by_label["sentiment v1"]["stage"] == "draft"
    assert by_label["imdb@sha256:aa11"]["url"].startswith("/datasets/")
    assert 'id="lineage-graph"' in page and "vendor/cytoscape-3.35.0.min.js" in page
    table = page.split('id="lineage-nodes"')[1]
    for label in ("sentiment v1", "sentiment v3", "imdb@sha256:aa11", "nlp @ abcdef1"):
        assert label in table
    assert "this version" in table and "upstream, 1 level" in table and "downstream, 1 level" in table
    impact = page.split('id="impact"')[1].split("</section>")[0]
    assert "sentiment v3" in impact and "sentiment v1" not in impact


def test_the_lineage_page_never_names_a_version_the_user_cannot_view(web_for, owner, reviewer, model, secret, stranger):
    register_version(model, owner)
    register_version(secret, stranger, parents=[parent(model, 1)], datasets=[DATASET])
    register_version(model, owner, parents=[parent(secret, 1, "distilled_from")])
    register_version(secret, stranger, parents=[parent(model, 2)])
    for number in (1, 2):
        page = web_for(reviewer).get(f"/models/sentiment/versions/{number}/lineage/").content.decode()
        assert "secret" not in page and "imdb" not in page, number
    assert "secret-model v1" in web_for(owner).get("/models/sentiment/versions/2/lineage/").content.decode()


def test_an_outsider_gets_404_for_a_lineage_page(web_for, outsider, model, version):
    assert web_for(outsider).get("/models/sentiment/versions/1/lineage/").status_code == 404
    assert web_for(outsider).get("/models/sentiment/versions/9/lineage/").status_code == 404


def test_a_missing_version_has_no_lineage_page(web_for, owner, model):
    assert web_for(owner).get("/models/sentiment/versions/3/lineage/").status_code == 404


def test_the_lineage_page_query_count_does_not_grow_with_depth_or_width(web_for, reviewer, model):
    client = web_for(reviewer)
    dataset = Dataset.objects.create(name="d", uri="s3://d")
    top = bulk_versions(model, 1)[0]
    middle = chain(model, 2, root=top)[-1]
    trained_on(dataset, [top, middle])
    url = f"/models/sentiment/versions/{middle.number}/lineage/"
    few = queries_for(client, url)
    ancestors = chain(model, 150)              # 150 more levels above the top ...
    link(top, ancestors[-1])
    trained_on(dataset, ancestors)
    chain(model, 50, root=middle)              # ... 50 levels below the middle ...
    fan_out(model, middle, 100)                # ... and 100 siblings derived from it
    assert queries_for(client, url) == few


# -- the Reproduce panel on the version page ---------------------------------------------------------------------


def test_the_version_page_has_a_reproduce_panel_with_copyable_json(web_for, owner, model):
    register_version(model, owner)
    register_version(
        model, owner, parents=[parent(model, 1)], datasets=[{**DATASET, "size_bytes": 4096}],
        code={"repository": "https://git.example.com/nlp.git", "commit": "abcdef1", "branch": "main"},
        dependencies={"python_version": "3.11", "framework": "torch", "framework_version": "2.3.1", "requirements": "torch==2.3.1\n"},
        environment={"image": "registry.example.com/train@sha256:" + "cd" * 32},
        hyperparameters={"lr": 3e-5, "epochs": 3},
        run={"id": "wandb-7x", "url": "https://wandb.ai/team/proj/runs/7x"},
    )
    page = web_for(owner).get("/models/sentiment/versions/2/").content.decode()
    spec = _json_script(page, "reproduce-data")
    assert spec["code"]["commit"] == "abcdef1" and spec["datasets"][0]["digest"] == "sha256:aa11"
    assert spec["dependencies"]["python_version"] == "3.11" and spec["environment"]["image"].endswith("cd" * 32)
    assert spec["hyperparameters"] == {"lr": 3e-5, "epochs": 3}
    assert spec["run"] == {"id": "wandb-7x", "url": "https://wandb.ai/team/proj/runs/7x"}
    assert spec["parents"] == [{"model": "sentiment", "version": 1, "relation": "fine_tuned_from"}]
    assert 'id="reproduce-json"' in page and 'id="reproduce-copy"' in page and "lineage/reproduce.js" in page
    assert '<a href="https://wandb.ai/team/proj/runs/7x" rel="noopener noreferrer nofollow"' in page
    assert 'href="/models/sentiment/versions/2/lineage/"' in page
    assert json.loads(html.unescape(page.split('id="reproduce-json"')[1].split(">", 1)[1].split("</pre>")[0])) == spec


def test_the_reproduce_panels_json_registered_again_through_the_api_is_accepted_and_yields_the_same_document(web_for, api_for, owner, model):
    files = {"weights/model.bin": b"\x00weights", "config.json": b'{"hidden_size": 4}'}
    register_version(model, owner)
    register_version(
        model, owner, files=files, parents=[parent(model, 1)], datasets=[{**DATASET, "size_bytes": 4096}, {**DATASET, "role": "evaluation"}],
        description="Fine-tuned.", tags=["nlp"], metrics={"accuracy": 0.9}, flavor="pytorch",
        code={"repository": "https://git.example.com/nlp.git", "commit": "abcdef1", "branch": "main", "dirty": True},
        dependencies={"python_version": "3.11", "requirements": "torch==2.3.1\n"}, environment={"cuda": "12.1"},
        hyperparameters={"lr": 3e-5, "layers": [2, 2]}, run={"url": "https://wandb.ai/team/proj/runs/7x"},
    )
    client = web_for(owner)
    spec = _json_script(client.get("/models/sentiment/versions/2/").content.decode(), "reproduce-data")
    assert set(spec) == {
        "description", "flavor", "tags", "hyperparameters", "metrics", "datasets", "code", "dependencies", "environment", "run", "parents", "artifacts",
    }
    uploads = [upload(item["path"].rsplit("/", 1)[-1], files[item["path"]]) for item in spec["artifacts"]]
    again = api_for(owner).post("/api/v1/models/sentiment/versions/", {"files": uploads, "metadata": json.dumps(spec)}, format="multipart")
    assert again.status_code == 201, again.json()
    assert _json_script(client.get("/models/sentiment/versions/3/").content.decode(), "reproduce-data") == spec


def test_the_reproduce_panel_leaves_out_parents_the_user_cannot_view(web_for, owner, reviewer, model, secret, stranger):
    register_version(secret, stranger)
    register_version(model, owner, parents=[parent(secret, 1)])
    reviewers_page = web_for(reviewer).get("/models/sentiment/versions/1/").content.decode()
    assert _json_script(reviewers_page, "reproduce-data")["parents"] == [] and "secret" not in reviewers_page
    assert _json_script(web_for(owner).get("/models/sentiment/versions/1/").content.decode(), "reproduce-data")["parents"][0]["model"] == "secret-model"


def test_a_run_url_that_is_not_http_never_becomes_a_link(web_for, owner, model, version):
    TrainingRun.objects.create(version=version, run_id="r1", url="javascript:alert(1)")  # refused at registration; bypassing it here
    page = web_for(owner).get("/models/sentiment/versions/1/").content.decode()
    assert 'href="javascript:' not in page


def test_the_version_page_query_count_stays_constant_with_lineage(web_for, owner, model):
    client = web_for(owner)
    register_version(model, owner)
    few = queries_for(client, "/models/sentiment/versions/1/")
    register_version(model, owner, parents=[parent(model, 1)], run={"id": "r"}, datasets=[DATASET])
    for _ in range(3):
        register_version(model, owner, parents=[parent(model, 2)])
    assert queries_for(client, "/models/sentiment/versions/2/") == few


# -- registering with lineage through the upload form -------------------------------------------------------------


def _upload(**extra):
    data = {"flavor": "custom", "files": [upload("model.bin", b"weights")], "metric_name": [""], "metric_value": [""]}
    data.update(extra)
    return data


def test_the_upload_form_records_parents_and_the_run(web_for, owner, model, version):
    response = web_for(owner).post(
        "/models/sentiment/versions/new/",
        _upload(parent_model=["sentiment", ""], parent_version=["1", ""], parent_relation=["distilled_from", "fine_tuned_from"],
                run_id="mlflow-1", run_url="https://mlflow.example.com/runs/1"),
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    child = ModelVersion.objects.get(number=2)
    assert [(link.parent.number, link.relation) for link in child.parent_links.all()] == [(1, "distilled_from")]
    assert (child.training_run.run_id, child.training_run.url) == ("mlflow-1", "https://mlflow.example.com/runs/1")


def test_the_upload_form_offers_parent_rows_and_run_fields(web_for, owner, model):
    page = web_for(owner).get("/models/sentiment/versions/new/").content.decode()
    assert 'name="parent_model"' in page and 'name="parent_relation"' in page and 'value="ensembled_from"' in page
    assert 'name="run_id"' in page and 'name="run_url"' in page


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"parent_model": ["sentiment"], "parent_version": ["5"], "parent_relation": ["fine_tuned_from"]}, "sentiment v5 is unknown or not visible to you"),
        ({"parent_model": ["secret-model"], "parent_version": ["1"], "parent_relation": ["fine_tuned_from"]}, "secret-model v1 is unknown or not visible to you"),
        ({"parent_model": ["sentiment"], "parent_version": ["2"], "parent_relation": ["fine_tuned_from"]}, "a version cannot be its own parent"),
        ({"parent_model": ["sentiment"], "parent_version": ["one"], "parent_relation": ["fine_tuned_from"]}, "Each parent needs a model name and a version number"),
        ({"parent_model": ["sentiment"], "parent_version": ["1"], "parent_relation": ["cloned_from"]}, "&#x27;relation&#x27; must be one of"),
        ({"run_url": "javascript:alert(1)"}, "The run URL must be an http:// or https:// URL"),
    ],
)
def test_the_upload_form_refuses_bad_lineage_and_stores_nothing(web_for, reviewer, owner, model, version, secret, stranger, extra, message):
    from apps.models.permissions import Action
    from apps.models.services import model_permission_grant

    register_version(secret, stranger)  # exists, but the reviewer may not view it
    model_permission_grant(model=model, actor=owner, action=Action.REGISTER, user=reviewer)
    response = web_for(reviewer).post("/models/sentiment/versions/new/", _upload(**extra))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert ModelVersion.objects.filter(model=model).count() == 1 and not VersionParent.objects.exists()
