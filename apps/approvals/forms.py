from django import forms
from django.contrib.auth.models import Group

from apps.versions.lifecycle import Stage


class TransitionRequestForm(forms.Form):
    to_stage = forms.ChoiceField(choices=Stage.choices, label="Move to")
    justification = forms.CharField(max_length=5000, widget=forms.Textarea(attrs={"rows": 2, "placeholder": "Why this version should move (reviewers read this first)"}))

    def __init__(self, *args, targets: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["to_stage"].choices = [(t, t) for t in targets]
        self.fields["to_stage"].initial = targets[0] if targets else None  # allowed_targets puts the forward move first


class DecisionForm(forms.Form):
    comment = forms.CharField(required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 2}))


class OverrideForm(forms.Form):
    reason = forms.CharField(max_length=5000, widget=forms.Textarea(attrs={"rows": 2}), help_text="Why production may take this version despite the failed quality gate. Kept in the audit log.")


class RollbackForm(forms.Form):
    reason = forms.CharField(max_length=5000, widget=forms.TextInput(attrs={"placeholder": "Why (kept in the pointer history)"}))
    to_version = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, label="Back to")

    def __init__(self, *args, candidates: list[int], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["to_version"].choices = [("", "the previous production version")] + [(n, f"v{n}") for n in candidates]


class ApprovalPolicyForm(forms.Form):
    staging_required = forms.IntegerField(min_value=0, max_value=10, label="Approvals needed for staging")
    staging_group = forms.ModelChoiceField(queryset=Group.objects.order_by("name"), required=False, label="Staging approvers must be in")
    production_required = forms.IntegerField(min_value=0, max_value=10, label="Approvals needed for production")
    production_group = forms.ModelChoiceField(queryset=Group.objects.order_by("name"), required=False, label="Production approvers must be in")


class PointInTimeForm(forms.Form):
    at = forms.DateTimeField(required=False, label="What was in production at", widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": "1"}))


class ArchiveForm(forms.Form):
    justification = forms.CharField(
        max_length=5000, label="Why archive them",
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "Kept with each move; reviewers read it on requests"}),
    )


class InboxFilterForm(forms.Form):
    """The inbox's filters (all optional): whose requests, which model, which target stage."""

    view = forms.ChoiceField(required=False, label="Show")
    model = forms.CharField(required=False, max_length=128, label="Model")
    stage = forms.ChoiceField(required=False, choices=[("", "any target")] + list(Stage.choices), label="Target stage")

    def __init__(self, *args, views, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["view"].choices = views
