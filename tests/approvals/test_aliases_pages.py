"""Alias pages: badges on the model page's versions table and the version page, set/move/delete from both, the
alias page with its history, "at T" and policy; governed aliases are requested for review; query counts stay flat."""

import pytest

from apps.approvals.models import TransitionRequest
from apps.approvals.services import alias_policy_update, alias_set
from apps.models.permissions import Action
from apps.models.services import model_permission_grant
from apps.versions.selectors import version_at_alias
from tests.factories import register_version
from tests.helpers import queries_for

pytestmark = pytest.mark.django_db


def test_badges_show_on_the_versions_table_and_the_version_page(web_for, owner, model):
    v1, _ = register_version(model, owner), register_version(model, owner)
    alias_set(model=model, alias="champion", version=v1, actor=owner)
    alias_set(model=model, alias="eu-prod", version=v1, actor=owner)
    client = web_for(owner)
    page = client.get(f"/models/{model.name}/").content.decode()
    assert page.count('class="badge alias"') >= 4  # two badges in the table, two in the aliases card
    assert f'href="/models/{model.name}/aliases/champion/"' in page
    version_page = client.get(f"/models/{model.name}/versions/1/").content.decode()
    assert "@champion" in version_page and "@eu-prod" in version_page
    assert "@champion" not in client.get(f"/models/{model.name}/versions/2/").content.decode().split('id="aliases"')[1].split("</p>")[0]


def test_set_move_and_delete_from_the_model_page_and_the_version_page(web_for, owner, model):
    register_version(model, owner), register_version(model, owner)
    client = web_for(owner)
    response = client.post(f"/models/{model.name}/aliases/", {"alias": "champion", "version": 1, "back": "model"}, follow=True)
    assert "@champion now points at v1" in response.content.decode() and version_at_alias(model, "champion").number == 1
    response = client.post(f"/models/{model.name}/aliases/", {"alias": "champion", "version": 2, "back": "version"})
    assert response.url == f"/models/{model.name}/versions/2/" and version_at_alias(model, "champion").number == 2
    kept = client.post(f"/models/{model.name}/aliases/champion/delete/", {"back": "version", "reason": "x" * 5001}, follow=True)
    assert "@champion not deleted" in kept.content.decode() and version_at_alias(model, "champion").number == 2
    client.post(f"/models/{model.name}/aliases/champion/delete/", {"back": "version"})
    assert version_at_alias(model, "champion") is None
    no_version = client.post(f"/models/{model.name}/aliases/", {"alias": "champion", "version": 0, "back": "model"}, follow=True)
    assert "Alias not set: Ensure this value is greater than or equal to 1." in no_version.content.decode()
    refused = client.post(f"/models/{model.name}/aliases/", {"alias": "staging", "version": 1, "back": "model"}, follow=True)
    assert "reserved" in refused.content.decode()


def test_a_governed_alias_set_from_a_page_is_requested_for_review(web_for, owner, model):
    register_version(model, owner)
    alias_policy_update(model=model, alias="champion", actor=owner, required_approvals=1)
    client = web_for(owner)
    assert "after 1 approval(s)" not in client.get(f"/models/{model.name}/").content.decode()  # a policy alone shows no alias
    without_reason = client.post(f"/models/{model.name}/aliases/", {"alias": "champion", "version": 1, "back": "model"}, follow=True)
    assert "needs 1 approval(s)" in without_reason.content.decode() and not TransitionRequest.objects.exists()
    requested = client.post(f"/models/{model.name}/aliases/", {"alias": "champion", "version": 1, "reason": "best offline", "back": "model"})
    created = TransitionRequest.objects.get()
    assert requested.url == f"/approvals/{created.pk}/" and created.alias == "champion" and version_at_alias(model, "champion") is None
    review = client.get(requested.url).content.decode()
    assert "@champion" in review
    alias_set(model=model, alias="canary", version=model.versions.get(), actor=owner)
    alias_policy_update(model=model, alias="canary", actor=owner, required_approvals=2, gates=True)
    card = client.get(f"/models/{model.name}/").content.decode().split('id="aliases"')[1].split("</section>")[0]
    assert "@canary" in card and "after 2 approval(s), gated" in card


def test_the_alias_page_shows_history_at_t_and_policy(web_for, owner, reviewer, model):
    register_version(model, owner), register_version(model, owner)
    alias_set(model=model, alias="champion", version=model.versions.get(number=1), actor=owner)
    alias_set(model=model, alias="champion", version=model.versions.get(number=2), actor=owner, reason="better")
    page = web_for(owner).get(f"/models/{model.name}/aliases/champion/").content.decode()
    assert "better" in page and 'id="alias-policy-form"' in page and 'id="alias-rollback-form"' in page
    no_reason = web_for(reviewer).post(f"/models/{model.name}/aliases/champion/rollback/", {"to_version": 1}, follow=True)
    assert "Not rolled back: This field is required." in no_reason.content.decode()
    rolled = web_for(reviewer).post(f"/models/{model.name}/aliases/champion/rollback/", {"reason": "v2 regressed"}, follow=True)
    assert "@champion rolled back to v1." in rolled.content.decode() and version_at_alias(model, "champion").number == 1
    saved = web_for(owner).post(f"/models/{model.name}/aliases/champion/policy/", {"required_approvals": 2, "gates": "on"}, follow=True)
    assert "Policy of @champion saved" in saved.content.decode()
    at = web_for(owner).get(f"/models/{model.name}/aliases/champion/", {"at": "2000-01-01T00:00:00"}).content.decode()
    assert "pointed at\n    <strong>nothing</strong>" in at
    assert web_for(owner).get(f"/models/{model.name}/aliases/production/").status_code == 200
    assert web_for(owner).get(f"/models/{model.name}/aliases/latest/").status_code == 404


def test_outsiders_get_404_and_viewers_cannot_write(web_for, owner, model, outsider, make_user):
    register_version(model, owner)
    alias_set(model=model, alias="champion", version=model.versions.get(), actor=owner)
    assert web_for(outsider).get(f"/models/{model.name}/aliases/champion/").status_code == 404
    viewer = make_user("viewer")
    model_permission_grant(model=model, actor=owner, action=Action.VIEW, user=viewer)
    client = web_for(viewer)
    page = client.get(f"/models/{model.name}/aliases/champion/").content.decode()
    assert 'id="alias-set-form"' not in page and 'id="alias-policy-form"' not in page
    assert client.post(f"/models/{model.name}/aliases/", {"alias": "champion", "version": 1}).status_code == 403
    assert client.post(f"/models/{model.name}/aliases/champion/delete/").status_code == 403
    assert client.post(f"/models/{model.name}/aliases/champion/policy/", {"required_approvals": 0}).status_code == 403


def test_query_counts_do_not_grow_with_aliases(web_for, owner, model):
    versions = [register_version(model, owner) for _ in range(2)]
    client = web_for(owner)
    alias_set(model=model, alias="a0", version=versions[0], actor=owner)
    counts = [queries_for(client, url) for url in (f"/models/{model.name}/", f"/models/{model.name}/versions/1/", f"/models/{model.name}/aliases/a0/")]
    for index in range(1, 6):
        alias_set(model=model, alias=f"a{index}", version=versions[index % 2], actor=owner)
        alias_set(model=model, alias="a0", version=versions[index % 2], actor=owner)
    assert [queries_for(client, url) for url in (f"/models/{model.name}/", f"/models/{model.name}/versions/1/", f"/models/{model.name}/aliases/a0/")] == counts


def test_the_review_page_of_a_gated_alias_request_shows_the_gate_as_it_stands(web_for, owner, reviewer, model):
    register_version(model, owner)
    alias_policy_update(model=model, alias="champion", actor=owner, required_approvals=1, gates=True)
    web_for(owner).post(f"/models/{model.name}/aliases/", {"alias": "champion", "version": 1, "reason": "best", "back": "model"})
    page = web_for(reviewer).get(f"/approvals/{TransitionRequest.objects.get().pk}/").content.decode()
    assert "Quality gate now" in page and "Validation has not finished" in page
