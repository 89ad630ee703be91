"""Lineage fixtures on top of the standing owner / reviewer / outsider ones.

`secret` is a model managed by `stranger`, who may also view `model`; `owner` may view `secret`; `reviewer`
may view `model` only; `outsider` sees nothing. So a chain model -> secret -> model lets each of them see a
different slice of the same lineage. `team` groups the owner and the reviewer.
"""

import pytest
from django.contrib.auth.models import Group

from apps.models.permissions import Action
from apps.models.services import model_create, model_permission_grant


@pytest.fixture
def stranger(make_user, model, owner):
    user = make_user("stranger")
    model_permission_grant(model=model, actor=owner, action=Action.VIEW, user=user)
    return user


@pytest.fixture
def secret(stranger, owner):
    registered = model_create(name="secret-model", actor=stranger)
    model_permission_grant(model=registered, actor=stranger, action=Action.VIEW, user=owner)
    return registered


@pytest.fixture
def team(owner, reviewer):
    """A team of the owner and the reviewer (the outsider and the stranger are not in it)."""
    group = Group.objects.create(name="nlp-team")
    group.user_set.add(owner, reviewer)
    return group


DATASET = {"name": "imdb", "uri": "s3://data/imdb", "digest": "sha256:aa11", "role": "training"}
EVAL_DATASET = {"name": "imdb-test", "uri": "s3://data/imdb-test", "digest": "v1", "role": "evaluation"}


def parent(model, number: int, relation: str = "fine_tuned_from") -> dict:
    return {"model": model.name, "version": number, "relation": relation}
