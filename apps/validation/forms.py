import fnmatch

from django import forms

from .models import Direction, RegressionKind


class ValidationPolicyForm(forms.Form):
    required_file_patterns = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One glob pattern per line that every version must contain, e.g. tokenizer/*.json",
    )
    pinned_baseline = forms.TypedChoiceField(
        required=False, coerce=int, empty_value=None, label="Baseline",
        help_text="Compare new versions with this version instead of the one in production.",
    )

    def __init__(self, *args, version_numbers: list[int], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["pinned_baseline"].choices = [("", "the production version")] + [(n, f"v{n}") for n in version_numbers]

    def clean_required_file_patterns(self) -> list[str]:
        patterns = [line.strip() for line in self.cleaned_data["required_file_patterns"].splitlines() if line.strip()]
        for pattern in patterns:
            if pattern.startswith("/") or ".." in pattern.split("/") or len(pattern) > 300:
                raise forms.ValidationError(f"'{pattern}' must be a relative pattern without '..'.")
            fnmatch.translate(pattern)
        return patterns


class QualityRuleForm(forms.Form):
    metric = forms.CharField(max_length=128)
    # Initial values equal to what an untouched empty row posts, so empty extra rows are skipped, not refused.
    direction = forms.ChoiceField(choices=Direction.choices, initial=Direction.HIGHER)
    allowed_regression = forms.FloatField(min_value=0, initial=0)
    regression_kind = forms.ChoiceField(choices=RegressionKind.choices, initial=RegressionKind.ABSOLUTE)
    min_value = forms.FloatField(required=False)
    max_value = forms.FloatField(required=False)

    def clean(self):
        cleaned = super().clean()
        low, high = cleaned.get("min_value"), cleaned.get("max_value")
        if low is not None and high is not None and low > high:
            raise forms.ValidationError("The minimum is larger than the maximum.")
        return cleaned


QualityRuleFormSet = forms.formset_factory(QualityRuleForm, extra=2, can_delete=True)
