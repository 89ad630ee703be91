"""Included at the site root: the public keys that verify manifest signatures, where clients look for them."""

from django.contrib.auth.decorators import login_not_required
from django.urls import path

from . import api

urlpatterns = [
    path(".well-known/model-registry-keys.json", login_not_required(api.public_keys), name="signing-keys"),
]
