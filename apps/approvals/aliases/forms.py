from django import forms
from django.contrib.auth.models import Group

from ..forms import PointInTimeForm, RollbackForm

# The page a form posted from, where its view redirects back to (views._back).
BACK_TO = [("model", "model"), ("version", "version"), ("alias", "alias")]


class AliasSetForm(forms.Form):
    alias = forms.CharField(max_length=128, widget=forms.TextInput(attrs={"placeholder": "champion", "list": "alias-names", "autocapitalize": "off"}))
    version = forms.IntegerField(min_value=1, label="Version number")
    reason = forms.CharField(
        required=False, max_length=5000, widget=forms.TextInput(attrs={"placeholder": "Why (required when the alias needs approval)"})
    )
    back = forms.ChoiceField(choices=BACK_TO, required=False, widget=forms.HiddenInput)


class AliasDeleteForm(forms.Form):
    reason = forms.CharField(required=False, max_length=5000)
    back = forms.ChoiceField(choices=BACK_TO, required=False, widget=forms.HiddenInput)


class AliasPolicyForm(forms.Form):
    required_approvals = forms.IntegerField(min_value=0, max_value=10, label="Approvals needed to move it")
    approver_group = forms.ModelChoiceField(queryset=Group.objects.order_by("name"), required=False, label="Approvers must be in")
    gates = forms.BooleanField(required=False, label="Judge validation, the quality gate and unsafe serialization, as for production")


class AliasPointInTimeForm(PointInTimeForm):
    at = forms.DateTimeField(required=False, label="What it pointed at, at", widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": "1"}))


class AliasRollbackForm(RollbackForm):
    def __init__(self, *args, candidates: list[int], **kwargs):
        super().__init__(*args, candidates=candidates, **kwargs)
        self.fields["to_version"].choices = [("", "the version it pointed at before")] + [(n, f"v{n}") for n in candidates]
