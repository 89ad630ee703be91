"""Model cards: a structured card per model and per version (license, intended use, limitations, training data, a
Markdown body sanitized as everywhere), an evaluation-results table from the metrics, a README.md's YAML front matter
offered as a version's card (read safely), a live preview, audit, permissions."""

import pytest

from apps.audit.models import AuditEntry
from apps.cards.frontmatter import FrontMatterError, split_front_matter
from apps.cards.models import ModelCard
from apps.models.permissions import Action
from apps.models.services import model_permission_grant
from tests.factories import promote, register_version
from tests.helpers import queries_for

pytestmark = pytest.mark.django_db

README = b"""---
license: apache-2.0
datasets:
  - imdb-reviews-train
  - sst2
intended_use: Sentiment of English product reviews.
limitations: Not for medical or legal text.
tags: [nlp]
---
# Sentiment classifier

Fine-tuned **DistilBERT**. <script>alert(1)</script>
"""
CARD = {"license": "mit", "intended_use": "Reviews", "limitations": "English only", "training_data": "imdb", "body": "# Card\n\n<b>raw</b> **bold**"}


def test_a_manager_writes_the_model_card_and_the_model_page_shows_it_sanitized_with_production_metrics(web_for, owner, reviewer, model):
    promote(register_version(model, owner, metrics={"accuracy": 0.91}, datasets=[{"name": "imdb-test", "uri": "s3://d/t", "role": "evaluation"}]),
            requester=owner, approver=reviewer)
    client = web_for(owner)
    assert client.get(f"/models/{model.name}/card/edit/").status_code == 200
    response = client.post(f"/models/{model.name}/card/edit/", CARD)
    assert response.status_code == 302
    page = client.get(f"/models/{model.name}/").content.decode()
    card = page[page.index('id="model-card"'):]
    assert 'data-field="license">mit' in card and "English only" in card and "<strong>bold</strong>" in card
    assert "<b>raw</b>" not in card and "&lt;b&gt;raw&lt;/b&gt;" in card
    assert "accuracy" in card and "0.91" in card and "imdb-test" in card
    entry = AuditEntry.objects.filter(action="card.updated").get()
    assert entry.after["license"] == "mit" and entry.before is None


def test_a_version_card_can_be_filled_from_the_readme_front_matter(web_for, owner, model):
    register_version(model, owner, files={"README.md": README, "config.json": b"{}"}, metrics={"f1": 0.8})
    client = web_for(owner)
    version_page = client.get(f"/models/{model.name}/versions/1/").content.decode()
    assert 'id="readme-offer"' in version_page
    form = client.get(f"/models/{model.name}/versions/1/card/edit/?from=readme").content.decode()
    assert 'value="apache-2.0"' in form and "imdb-reviews-train, sst2" in form and "Not for medical or legal text." in form
    assert "Front-matter keys not used: tags" in form and "# Sentiment classifier" in form
    client.post(f"/models/{model.name}/versions/1/card/edit/", {
        "license": "apache-2.0", "training_data": "imdb-reviews-train, sst2", "body": "# Sentiment classifier", "source": "README.md in the artifacts",
    })
    card = ModelCard.objects.get(version__number=1)
    assert card.license == "apache-2.0" and card.source == "README.md in the artifacts"
    page = client.get(f"/models/{model.name}/versions/1/").content.decode()
    assert 'id="readme-offer"' not in page and "<h1>Sentiment classifier</h1>" in page and "f1" in page


def test_front_matter_is_read_safely():
    assert split_front_matter("# no front matter") == ({}, "# no front matter", [])
    fields, body, notes = split_front_matter("---\nlicense: mit\nmodel-index: {a: 1}\n---\nBody\n")
    assert fields == {"license": "mit"} and body == "Body\n" and notes == ["model-index"]
    bomb = "---\na: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b, *b, *b]\n---\n"
    with pytest.raises(FrontMatterError, match="alias"):
        split_front_matter(bomb)
    with pytest.raises(FrontMatterError, match="valid YAML"):
        split_front_matter("---\nlicense: [unclosed\n---\n")
    with pytest.raises(FrontMatterError, match="KiB"):
        split_front_matter("---\nlicense: " + "x" * 20_000 + "\n---\n")
    with pytest.raises(FrontMatterError):
        split_front_matter("---\n!!python/object/apply:os.system ['echo owned']\n---\n")


def test_a_readme_with_bad_front_matter_is_offered_as_text_with_the_reason(web_for, owner, model):
    register_version(model, owner, files={"README.md": b"---\nlicense: [broken\n---\nHello"})
    form = web_for(owner).get(f"/models/{model.name}/versions/1/card/edit/?from=readme").content.decode()
    assert "not valid YAML" in form and "its text is used as the body" in form


def test_the_preview_renders_sanitized_markdown_for_viewers_only(web_for, owner, reviewer, outsider, model):
    response = web_for(reviewer).post(f"/models/{model.name}/card/preview/", {"body": "**hi** <script>x</script> [a](javascript:alert(1))"})
    html = response.content.decode()
    assert response.status_code == 200 and "<strong>hi</strong>" in html and "<script>" not in html and 'href="javascript' not in html
    assert web_for(outsider).post(f"/models/{model.name}/card/preview/", {"body": "x"}).status_code == 404
    assert web_for(reviewer).get(f"/models/{model.name}/card/preview/").status_code == 405
    assert web_for(reviewer).post(f"/models/{model.name}/card/preview/", {"body": "x" * 100_001}).status_code == 400


def test_editing_cards_needs_manage_for_the_model_and_register_for_a_version(web_for, owner, reviewer, outsider, model):
    register_version(model, owner)
    assert web_for(reviewer).post(f"/models/{model.name}/card/edit/", CARD).status_code == 403
    assert web_for(reviewer).post(f"/models/{model.name}/versions/1/card/edit/", CARD).status_code == 403
    assert web_for(outsider).get(f"/models/{model.name}/card/edit/").status_code == 404
    model_permission_grant(model=model, actor=owner, action=Action.REGISTER, user=reviewer)
    assert web_for(reviewer).post(f"/models/{model.name}/versions/1/card/edit/", CARD).status_code == 302
    assert not ModelCard.objects.filter(version__isnull=True).exists()
    too_long = web_for(owner).post(f"/models/{model.name}/card/edit/", CARD | {"license": "x" * 101})
    assert too_long.status_code == 400


def test_the_version_page_query_count_does_not_grow_with_the_card_or_metrics(web_for, owner, model):
    client = web_for(owner)
    register_version(model, owner, files={"README.md": README}, metrics={"a": 1})
    register_version(model, owner, files={"README.md": README, "b.txt": b"b"}, metrics={f"m{i}": i for i in range(20)})
    assert queries_for(client, f"/models/{model.name}/versions/1/") == queries_for(client, f"/models/{model.name}/versions/2/")
    client.post(f"/models/{model.name}/versions/1/card/edit/", CARD)
    client.post(f"/models/{model.name}/versions/2/card/edit/", CARD)
    assert queries_for(client, f"/models/{model.name}/versions/1/") == queries_for(client, f"/models/{model.name}/versions/2/")


def test_the_card_editor_query_count_does_not_grow_with_metrics(web_for, owner, model):
    register_version(model, owner, metrics={"a": 1}, files={"README.md": README})
    register_version(model, owner, metrics={f"m{i}": i for i in range(30)}, files={"README.md": README})
    client = web_for(owner)
    url = f"/models/{model.name}/versions/{{}}/card/edit/?from=readme"
    assert queries_for(client, url.format(1)) == queries_for(client, url.format(2))
