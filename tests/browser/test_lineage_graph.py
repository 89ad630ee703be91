"""The lineage graph in a real browser: cytoscape draws the expected nodes, hides what the reader may not view,
and a click on a node opens its page."""

import re

import pytest
from django.contrib.auth import get_user_model

from apps.models.permissions import Action
from apps.models.services import model_create, model_permission_grant
from tests.factories import register_version

pytestmark = pytest.mark.browser
PASSWORD = "browser-lineage-pass-3307"
DATA = {"name": "imdb", "uri": "s3://data/imdb", "digest": "v3", "role": "training"}


def log_in(page, base_url: str, username: str) -> None:
    page.goto(base_url + "/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(base_url + "/")


def graph_labels(page) -> set[str]:
    page.wait_for_function("() => window.lineageGraph && window.lineageGraph.nodes().length > 0")
    return set(page.evaluate("() => window.lineageGraph.nodes().map(n => n.data('label'))"))


def node_centre(page, label: str) -> tuple[float, float]:
    """Where the node whose label contains `label` is drawn, relative to the graph's box."""
    position = page.evaluate(
        "label => window.lineageGraph.nodes().filter(n => (n.data('label') || '').includes(label))[0].renderedPosition()", label
    )
    return position["x"], position["y"]


def test_the_lineage_graph_shows_the_expected_nodes_and_navigates(live_server, transactional_db, page):
    owner = get_user_model().objects.create_user(username="lineage-owner", password=PASSWORD)
    reader = get_user_model().objects.create_user(username="lineage-reader", password=PASSWORD)
    base_model = model_create(name="bert-base", actor=owner)
    tuned = model_create(name="bert-sentiment", actor=owner)
    hidden = model_create(name="bert-secret", actor=owner)
    for visible in (base_model, tuned):
        model_permission_grant(model=visible, actor=owner, action=Action.VIEW, user=reader)
    root = register_version(base_model, owner, datasets=[DATA], code={"repository": "https://git.example.com/bert.git", "commit": "abc1234"})
    register_version(tuned, owner, parents=[{"model": "bert-base", "version": 1, "relation": "fine_tuned_from"}])
    register_version(hidden, owner, parents=[{"model": "bert-base", "version": 1, "relation": "distilled_from"}])

    log_in(page, live_server.url, "lineage-reader")
    page.goto(f"{live_server.url}/models/bert-base/versions/{root.number}/lineage/")
    labels = graph_labels(page)
    assert any("bert-base" in label for label in labels)
    assert any("bert-sentiment" in label for label in labels)
    assert any("imdb" in label for label in labels)
    assert not any("bert-secret" in label for label in labels), "a version the reader may not view is not even named"
    assert "bert-secret" not in page.content()
    page.locator("#lineage-graph").scroll_into_view_if_needed()
    box = page.locator("#lineage-graph").bounding_box()
    assert box and box["height"] > 100

    # A real mouse click on the derived version's node opens its page. page.evaluate only reads where cytoscape drew
    # the node: evaluating `node.emit('tap')` returned the cytoscape collection, and serializing that object graph
    # back to Python took 18-70 s.
    x, y = node_centre(page, "bert-sentiment")
    with page.expect_navigation(url=re.compile(r"/models/bert-sentiment/versions/1/$")):
        page.mouse.click(box["x"] + x, box["y"] + y)
