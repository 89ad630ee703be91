"""The aliases API's shapes: an alias as the API shows it, and the bodies of its writes."""

from django.contrib.auth.models import Group
from rest_framework import serializers

from apps.versions.document import Text, TrueOrFalse, WholeNumber
from apps.web.serializers import Instant

from ..selectors import AliasRules


class AliasPolicySerializer(serializers.Serializer):
    """How an alias is governed. `production`'s is the production stage's approval policy, gates always on."""

    builtin = serializers.BooleanField(help_text="True for `production`, the production stage's pointer.")
    governed = serializers.BooleanField(help_text="Moving it needs approvals: it goes through a transition request.")
    required_approvals = serializers.IntegerField()
    approver_group = serializers.CharField(allow_null=True)
    gates = serializers.BooleanField(help_text="Validation, quality gate and unsafe-serialization gates are judged when it moves.")


class AliasSerializer(serializers.Serializer):
    """A named pointer of a model and the version it points at (null: it points nowhere)."""

    alias = serializers.CharField()
    version = serializers.IntegerField(allow_null=True)
    updated_at = Instant(allow_null=True, help_text="When it last moved (null: never).")
    policy = AliasPolicySerializer()


def policy_to_dict(rules: AliasRules) -> dict:
    """An alias's policy as the API shows it (the alias's name is around it)."""
    policy = rules.as_dict()
    policy.pop("alias")
    return policy


def alias_to_dict(alias: str, version, updated_at, rules: AliasRules) -> dict:
    updated = updated_at.isoformat() if updated_at else None
    return {"alias": alias, "version": version.number if version else None, "updated_at": updated, "policy": policy_to_dict(rules)}


class AliasSetBodySerializer(serializers.Serializer):
    """PUT .../aliases/<alias>/: the version to point at, and why."""

    default_error_messages = {"invalid": 'Send a JSON object with the version to point at, e.g. {"version": 3, "comment": "why"}.'}

    version = WholeNumber(error_messages={key: 'Give the version number, e.g. {{"version": 3}}.' for key in ("invalid", "required", "null")})
    comment = Text(help_text="Why (kept in the alias's history).")


class AliasDeleteBodySerializer(serializers.Serializer):
    """DELETE .../aliases/<alias>/: optionally why."""

    default_error_messages = {"invalid": "Send nothing, or a JSON object with a 'comment'."}

    comment = Text(help_text="Why (kept in the alias's history).")


class AliasPolicyBodySerializer(serializers.Serializer):
    """PUT .../aliases/<alias>/policy/ (managers)."""

    default_error_messages = {"invalid": 'Send a JSON object, e.g. {"required_approvals": 1, "approver_group": null, "gates": true}.'}

    required_approvals = WholeNumber(min_value=0, max_value=10, help_text="Distinct approvals a move needs (0: it moves at once).")
    approver_group = Text(required=False, empty=None, allow_null=True, help_text="Name of the group approvers must be in; null: anyone who may approve.")
    gates = TrueOrFalse(required=False, default=False, help_text="Judge validation, the quality gate and unsafe serialization (always true for production).")

    def validate_approver_group(self, name: str | None) -> Group | None:
        if not name:
            return None
        group = Group.objects.filter(name=name).first()
        if group is None:
            raise serializers.ValidationError(f"No group is named '{name}'; give an existing group's name, or null for anyone who may approve.")
        return group
