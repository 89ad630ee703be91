from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from apps.accounts.parsers import json_loads_checked
from apps.lineage.models import DatasetRole, ParentRelation
from apps.web.forms import TagsField

from .document import VersionMetadata, document_check, message_for
from .models import Flavor


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput(attrs={"multiple": True}))
        kwargs.setdefault("allow_empty_file", True)  # folders hold empty files (__init__.py, .gitkeep)
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        files = data if isinstance(data, (list, tuple)) else ([data] if data else [])
        return [super(MultipleFileField, self).clean(item, initial) for item in files]


def _json_upload(upload, label: str) -> dict:
    if upload.size > settings.METADATA_MAX_BYTES:
        raise forms.ValidationError(f"The {label} file is larger than {settings.METADATA_MAX_BYTES} bytes.")
    try:
        value = json_loads_checked(upload.read(), field=f"The {label} file")
    except ValidationError as exc:
        raise forms.ValidationError([f"{field} {message}" for field, messages in exc.message_dict.items() for message in messages]) from exc
    if not isinstance(value, dict):
        raise forms.ValidationError(f"The {label} file must hold a JSON object.")
    return value


def _hyperparameter_value(text: str):
    """A row's value as JSON when it parses (numbers, lists, true/false), else as the text itself."""
    try:
        return json_loads_checked(text)
    except ValidationError:
        return text


class VersionUploadForm(forms.Form):
    """The browser's registration form. Repeated rows (metrics, hyperparameters, datasets) come as parallel lists."""

    files = MultipleFileField(required=False, help_text="Weights, config, tokenizer: any files. Or pick a whole folder below.")
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    flavor = forms.ChoiceField(choices=Flavor.choices, initial=Flavor.CUSTOM)
    tags = TagsField(required=False, help_text="Comma-separated.")
    metrics_file = forms.FileField(required=False, help_text="Or a JSON file of name → number.")
    hyperparameters_file = forms.FileField(required=False, help_text="Or a JSON file of name → value.")
    code_repository = forms.CharField(required=False, max_length=500, label="Repository URL")
    code_commit = forms.CharField(required=False, max_length=64, label="Commit SHA")
    code_branch = forms.CharField(required=False, max_length=255, label="Branch")
    code_dirty = forms.NullBooleanField(required=False, label="Uncommitted changes", widget=forms.NullBooleanSelect)
    requirements_file = forms.FileField(required=False, label="Requirements / lock file")
    python_version = forms.CharField(required=False, max_length=32)
    framework = forms.CharField(required=False, max_length=64)
    framework_version = forms.CharField(required=False, max_length=64)
    environment_image = forms.CharField(required=False, max_length=300, label="Container image (digest)")
    run_id = forms.CharField(required=False, max_length=200, label="Training run id", help_text="e.g. the MLflow or W&B run id.")
    run_url = forms.CharField(required=False, max_length=1000, label="Training run URL", help_text="http(s) link to the run; stored, never fetched.")

    ROW_FIELDS = {
        "metrics": ("metric_name", "metric_value"),
        "hyperparameters": ("param_name", "param_value"),
        "datasets": ("dataset_name", "dataset_uri", "dataset_digest", "dataset_role"),
        "parents": ("parent_model", "parent_version", "parent_relation"),
    }
    CHOICE_COLUMNS = {"dataset_role", "parent_relation"}  # selects always post a value: a row with only these is empty
    relations = ParentRelation.choices

    def __init__(self, data=None, files=None, *args, **kwargs):
        super().__init__(data, files, *args, **kwargs)
        self.rows = {key: self._rows(data, names) for key, names in self.ROW_FIELDS.items()}

    @staticmethod
    def _rows(data, names) -> list[dict]:
        if data is None:
            return []
        columns = [data.getlist(name) for name in names]
        width = max((len(column) for column in columns), default=0)
        rows = []
        for index in range(width):
            row = {name: (column[index] if index < len(column) else "").strip() for name, column in zip(names, columns)}
            if any(value for name, value in row.items() if name not in VersionUploadForm.CHOICE_COLUMNS):
                rows.append(row)
        return rows

    def _row_error(self, row: dict, message: str) -> None:
        """A problem with one row: shown on that row (the template marks it) and in the list above the form."""
        row["error"] = message
        self.add_error(None, message)

    def _parents(self) -> list[dict]:
        parents = []
        for row in self.rows["parents"]:
            number = row["parent_version"].lstrip("v")
            if not row["parent_model"] or not number.isdigit():
                self.add_error(None, f"Each parent needs a model name and a version number (got {row['parent_model']!r}, {row['parent_version']!r}).")
                continue
            parents.append({"model": row["parent_model"], "version": int(number), "relation": row["parent_relation"] or ParentRelation.FINE_TUNED_FROM})
        return parents

    def clean(self):
        cleaned = super().clean()
        metrics: dict = {}
        if cleaned.get("metrics_file"):
            try:
                metrics.update(_json_upload(cleaned["metrics_file"], "metrics"))
            except forms.ValidationError as exc:
                self.add_error("metrics_file", exc)
        for row in self.rows["metrics"]:
            if not row["metric_name"]:
                self._row_error(row, f"A metric row has the value {row['metric_value']!r} but no name.")
                continue
            try:
                metrics[row["metric_name"]] = float(row["metric_value"])
            except ValueError:
                self._row_error(row, f"Metric '{row['metric_name']}' must be a number, got {row['metric_value']!r}.")
        hyperparameters: dict = {}
        if cleaned.get("hyperparameters_file"):
            try:
                hyperparameters.update(_json_upload(cleaned["hyperparameters_file"], "hyperparameters"))
            except forms.ValidationError as exc:
                self.add_error("hyperparameters_file", exc)
        for row in self.rows["hyperparameters"]:
            if not row["param_name"]:
                self._row_error(row, f"A hyperparameter row has the value {row['param_value']!r} but no name.")
                continue
            hyperparameters[row["param_name"]] = _hyperparameter_value(row["param_value"])
        requirements = ""
        if cleaned.get("requirements_file"):
            upload = cleaned["requirements_file"]
            if upload.size > 100_000:
                self.add_error("requirements_file", "The requirements file is larger than 100 kB; upload it as an artifact instead.")
            else:
                try:
                    requirements = upload.read().decode("utf-8")
                except UnicodeDecodeError:
                    self.add_error("requirements_file", "The requirements file must be UTF-8 text.")
        document = {
            "description": cleaned.get("description", ""),
            "flavor": cleaned.get("flavor") or Flavor.CUSTOM,
            "tags": cleaned.get("tags") or [],
            "metrics": metrics,
            "hyperparameters": hyperparameters,
            "datasets": [
                {"name": r["dataset_name"], "uri": r["dataset_uri"], "digest": r["dataset_digest"], "role": r["dataset_role"] or DatasetRole.TRAINING}
                for r in self.rows["datasets"]
            ],
            "code": {
                "repository": cleaned.get("code_repository", ""),
                "commit": cleaned.get("code_commit", ""),
                "branch": cleaned.get("code_branch", ""),
                "dirty": cleaned.get("code_dirty"),
            },
            "dependencies": {
                "requirements": requirements,
                "python_version": cleaned.get("python_version", ""),
                "framework": cleaned.get("framework", ""),
                "framework_version": cleaned.get("framework_version", ""),
            },
            "environment": {"image": cleaned["environment_image"]} if cleaned.get("environment_image") else {},
            "parents": self._parents(),
            "run": {"id": cleaned.get("run_id", "").strip(), "url": cleaned.get("run_url", "").strip()},
        }
        cleaned["metadata"] = self._checked(document)
        cleaned["document"] = document  # what an upload session keeps (apps.catalog.upload_sessions)
        return cleaned

    # Where a problem with a part of the document is shown: (form field, how the message names it).
    DOCUMENT_FIELDS = {
        ("code", "repository"): ("code_repository", "The repository URL"),
        ("code", "commit"): ("code_commit", "The commit"),
        ("code", "branch"): ("code_branch", "The branch"),
        ("code", "dirty"): ("code_dirty", "Uncommitted changes"),
        ("dependencies", "requirements"): ("requirements_file", "The requirements file"),
        ("dependencies", "python_version"): ("python_version", "The Python version"),
        ("dependencies", "framework"): ("framework", "The framework"),
        ("dependencies", "framework_version"): ("framework_version", "The framework version"),
        ("environment",): ("environment_image", None),
        ("run", "id"): ("run_id", "The run id"),
        ("run", "url"): ("run_url", "The run URL"),
        ("description",): ("description", None),
        ("flavor",): ("flavor", None),
        ("tags",): ("tags", None),
    }

    def _checked(self, document: dict) -> VersionMetadata | None:
        """The document checked by the API's serializers; each problem shown at its field, the rest above the form."""
        if not any(document["run"].values()):
            del document["run"]
        metadata, problems = document_check(document)
        for path, message in problems:
            field, noun = self.DOCUMENT_FIELDS.get(path[:2]) or self.DOCUMENT_FIELDS.get(path[:1]) or (None, None)
            if field is not None:
                self.add_error(field, f"{noun} {message}" if len(path) > 1 else message)
            else:
                self.add_error(None, f"{path[0]}: {message_for(path, message)}" if path else message)
        return metadata


def labelled_for(form: forms.Form, exc: ValidationError) -> ValidationError:
    """A registration error for the form: messages about a part of the metadata without a field of its own
    (`datasets[0].name`, `hyperparameters.lr`) say which part, since they are shown above the form."""
    if not hasattr(exc, "error_dict"):
        return exc
    return ValidationError(
        {key: messages if key in form.fields else [f"{key}: {message}" for message in messages] for key, messages in exc.message_dict.items()}
    )


class VersionEditForm(forms.Form):
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False)
    tags = TagsField(required=False, help_text="Comma-separated.")
