from django import forms


class DatasetForm(forms.Form):
    name = forms.CharField(max_length=200)
    uri = forms.CharField(max_length=1000, label="URI", help_text="Where it lives, e.g. s3://data/imdb/. A record: the registry never fetches it.")
    digest = forms.CharField(max_length=200, required=False, label="Version or digest", help_text="e.g. v2 or sha256:…")
    size_bytes = forms.IntegerField(min_value=0, required=False, label="Size (bytes)")
    description = forms.CharField(max_length=5000, required=False, widget=forms.Textarea(attrs={"rows": 3}))
