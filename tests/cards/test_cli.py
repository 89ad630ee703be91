"""`model-registry card` against a live server: set a model's card from a file, fill a version's from its README."""

import json

import pytest

from apps.accounts.models import TokenScope
from apps.accounts.services import api_token_create
from apps.cards.models import ModelCard
from registry_cli.main import main
from tests.factories import register_version

pytestmark = pytest.mark.django_db(transaction=True)


def test_set_get_and_fill_from_the_readme(live_server, owner, model, tmp_path, capsys):
    register_version(model, owner, files={"README.md": b"---\nlicense: mit\nlimitations: English only\n---\n# v1\n"})
    _, token = api_token_create(user=owner, name="pipeline", scope=TokenScope.FULL)
    environ = {"REGISTRY_URL": live_server.url, "REGISTRY_TOKEN": token}
    card_file = tmp_path / "CARD.md"
    card_file.write_text("# Sentiment\n\nFor reviews.\n")
    assert main(["card", "set", model.name, "--license", "apache-2.0", "--body-file", str(card_file)], environ=environ) == 0
    assert main(["card", "from-readme", f"{model.name}/1"], environ=environ) == 0
    capsys.readouterr()
    assert main(["card", "get", f"{model.name}/1"], environ=environ) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["license"] == "mit" and answer["limitations"] == "English only" and answer["body"] == "# v1"
    assert ModelCard.objects.get(version__isnull=True).license == "apache-2.0"
    assert main(["card", "from-readme", model.name], environ=environ) == 1
    assert "is not NAME/N" in capsys.readouterr().err
