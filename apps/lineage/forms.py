from django import forms
from django.contrib.auth.models import Group


class DatasetForm(forms.Form):
    name = forms.CharField(max_length=200)
    uri = forms.CharField(max_length=1000, label="URI", help_text="Where it lives, e.g. s3://data/imdb/. A record: the registry never fetches it.")
    digest = forms.CharField(max_length=200, required=False, label="Version or digest", help_text="e.g. v2 or sha256:…")
    size_bytes = forms.IntegerField(min_value=0, required=False, label="Size (bytes)")
    description = forms.CharField(max_length=5000, required=False, widget=forms.Textarea(attrs={"rows": 3}))
    team = forms.ModelChoiceField(
        queryset=Group.objects.none(), required=False, empty_label="only me",
        help_text="Who else may see it. Anyone whose versions use it sees it too.",
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = Group.objects.order_by("name") if user.is_superuser else user.groups.order_by("name")
