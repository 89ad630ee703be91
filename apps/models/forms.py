from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from apps.web.forms import TagsField

from .names import canonical_model_name
from .permissions import Action


class RegisteredModelForm(forms.Form):
    name = forms.CharField(max_length=128, help_text="Letters, digits, '.', '_' and '-'. Used in URLs and the API.")
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 8}), required=False, help_text="Model card in Markdown.")
    team = forms.ModelChoiceField(queryset=Group.objects.none(), required=False, help_text="The owning team may view, register and request transitions.")
    tags = TagsField(required=False, help_text="Comma-separated.")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = Group.objects.order_by("name") if user.is_superuser else user.groups.order_by("name")

    def clean_name(self):
        return canonical_model_name(self.cleaned_data["name"])


class RegisteredModelEditForm(RegisteredModelForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        del self.fields["name"]


class PermissionGrantForm(forms.Form):
    username = forms.CharField(required=False, max_length=150, label="User")
    group = forms.ModelChoiceField(queryset=Group.objects.order_by("name"), required=False, label="or team")
    action = forms.ChoiceField(choices=Action.choices, label="Permission")

    def clean(self):
        cleaned = super().clean()
        username, group = cleaned.get("username"), cleaned.get("group")
        if bool(username) == bool(group):
            raise forms.ValidationError("Choose a user or a team (one of the two).")
        if username:
            user = get_user_model().objects.filter(username=username, is_active=True).first()
            if user is None:
                raise forms.ValidationError(f"No active user named '{username}'. Check the spelling.")
            cleaned["user"] = user
        return cleaned
