"""Cards through the API: read with evaluation results, written by PUT with the page's permissions and scopes."""

import pytest

from apps.accounts.models import TokenScope
from apps.accounts.services import api_token_create
from apps.cards.models import ModelCard
from tests.factories import promote, register_version

pytestmark = pytest.mark.django_db


def test_put_then_get_a_model_card_and_a_version_card(api_for, owner, reviewer, model):
    promote(register_version(model, owner, metrics={"accuracy": 0.9}), requester=owner, approver=reviewer)
    api = api_for(owner)
    empty = api.get(f"/api/v1/models/{model.name}/card/").json()
    assert empty["body"] == "" and empty["evaluated_version"] == 1 and empty["evaluation_results"][0]["metric"] == "accuracy"
    written = api.put(f"/api/v1/models/{model.name}/card/", {"license": "mit", "body": "# Card"}, format="json")
    assert written.status_code == 200 and written.json()["license"] == "mit" and written.json()["updated_by"] == "owner"
    version = api.put(f"/api/v1/models/{model.name}/versions/1/card/", {"limitations": "English only"}, format="json").json()
    assert version["limitations"] == "English only" and version["body"] == "" and version["evaluated_version"] == 1
    assert ModelCard.objects.count() == 2


def test_bad_bodies_and_missing_rights_are_refused(api_for, owner, reviewer, outsider, model):
    register_version(model, owner)
    api = api_for(owner)
    unknown = api.put(f"/api/v1/models/{model.name}/card/", {"licence": "mit"}, format="json")
    assert unknown.status_code == 400 and "licence" in unknown.json()["error"]["fields"]
    assert api.put(f"/api/v1/models/{model.name}/card/", {"license": "x" * 101}, format="json").status_code == 400
    assert api.put(f"/api/v1/models/{model.name}/card/", {"license": 5}, format="json").status_code == 400
    assert api_for(reviewer).put(f"/api/v1/models/{model.name}/card/", {"body": "x"}, format="json").status_code == 403
    assert api_for(outsider).get(f"/api/v1/models/{model.name}/versions/1/card/").status_code == 404
    _, secret = api_token_create(user=owner, name="reader", scope=TokenScope.READ)
    reader = api.__class__()
    reader.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert reader.get(f"/api/v1/models/{model.name}/card/").status_code == 200
    assert reader.put(f"/api/v1/models/{model.name}/versions/1/card/", {"body": "x"}, format="json").status_code == 403
    assert not ModelCard.objects.exists()


def test_a_version_card_is_filled_from_its_readme_through_the_api(api_for, owner, model):
    readme = b"---\nlicense: mit\ndatasets: [imdb]\n---\n# Hello\n"
    register_version(model, owner, files={"README.md": readme})
    register_version(model, owner, files={"README.md": b"---\nlicense: [broken\n---\n"})
    register_version(model, owner)
    api = api_for(owner)
    card = api.post(f"/api/v1/models/{model.name}/versions/1/card/from-readme/").json()
    assert card["license"] == "mit" and card["training_data"] == "imdb" and card["body"] == "# Hello"
    assert card["source"] == "README.md in the artifacts"
    broken = api.post(f"/api/v1/models/{model.name}/versions/2/card/from-readme/")
    assert broken.status_code == 400 and "not valid YAML" in broken.json()["error"]["message"] + str(broken.json()["error"].get("fields"))
    assert api.post(f"/api/v1/models/{model.name}/versions/3/card/from-readme/").status_code == 404
    assert ModelCard.objects.count() == 1
