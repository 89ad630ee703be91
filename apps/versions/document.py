"""The version metadata document, declared once as DRF serializers.

    {
      "description": "...", "flavor": "huggingface", "tags": ["nlp"],
      "hyperparameters": {"lr": 0.001}, "metrics": {"accuracy": 0.93},
      "datasets": [{"name": "imdb", "uri": "s3://data/imdb", "digest": "sha256:...", "role": "training"}],
      "code": {"repository": "https://git/x.git", "commit": "abc123", "branch": "main", "dirty": false},
      "dependencies": {"requirements": "torch==2.3.0\\n", "python_version": "3.11", "framework": "torch", "framework_version": "2.3.0"},
      "environment": {"image": "registry/x@sha256:...", "cuda": "12.1"},
      "run": {"id": "mlflow:4f2a...", "url": "https://mlflow.example.com/#/experiments/1/runs/4f2a..."},
      "parents": [{"model": "bert-base", "version": 3, "relation": "fine_tuned_from"}],
      "artifacts": [{"path": "weights/model.safetensors", "sha256": "..."}]
    }

The same classes read the document (the API's `metadata` part, the upload form, the CLI's `--metadata` file through
the check endpoint) and write it (the version JSON in `serializers.py`, the reproduce panel). Each field's `source`
is where the value lives on a saved version, so a serializer reads a version directly; `document_from_validated`
turns validated data back into the document's own keys for the registration service.

Datasets may also carry "size_bytes" and "description". The run URL is a record, never fetched (http or https
only). Parents are resolved at registration (`apps.lineage.services.parents_resolve`): each must already exist and
be visible to the registering user.
"""

import json
import math
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from rest_framework import serializers

from apps.accounts.parsers import json_document_errors, json_loads_checked
from apps.lineage.models import DatasetRole, ParentRelation
from apps.models.names import canonical_model_name

from .models import Flavor

METRIC_NAME = re.compile(r"^[A-Za-z0-9_.:/@-]{1,128}$")
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
COMMIT_SHA = re.compile(r"^[0-9a-fA-F]{7,64}$")
TAG = re.compile(r"^[\w.:-]{1,64}$")
MAX_PARENTS = 100
FINITE_MESSAGE = "must hold only finite numbers (no NaN or infinity) and nest at most 50 levels."


# -- fields -----------------------------------------------------------------------------------------------------------


class Text(serializers.CharField):
    """A JSON string, never a number turned into one; null means empty. Kept as sent (no trimming)."""

    default_error_messages = {
        "invalid": "must be a string.",
        "max_length": "must be at most {max_length} characters.",
        "blank": "is required.",
        "required": "is required.",
    }

    def __init__(self, *, empty="", **kwargs):
        self.empty = empty
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_blank", True)
        kwargs.setdefault("trim_whitespace", False)
        if not kwargs["required"]:
            kwargs.setdefault("default", empty)
        super().__init__(**kwargs)

    def validate_empty_values(self, data):
        if data is None and not self.required:
            return True, self.empty
        return super().validate_empty_values(data)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class Choice(serializers.ChoiceField):
    """One of a TextChoices' values; null or "" means the default."""

    def validate_empty_values(self, data):
        if data in (None, "") and self.default is not serializers.empty:
            return True, self.default
        return super().validate_empty_values(data)


class WholeNumber(serializers.IntegerField):
    """A JSON integer (not true/false, not "3", not 3.0)."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class TrueOrFalse(serializers.BooleanField):
    """JSON true, false or null; not "yes" or 1."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


def _finite(value, depth: int = 0) -> bool:
    """True when a JSON value holds no infinite or NaN number (JSON columns and strict JSON refuse them)."""
    if depth > 50:
        return False
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v, depth + 1) for v in value)
    return True


class Value(serializers.Field):
    """A JSON value of the document that may be left out or sent as null: then it is `empty()`."""

    empty = dict

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("default", self.empty)
        super().__init__(**kwargs)

    def validate_empty_values(self, data):
        if data is None:
            return True, self.empty()
        return super().validate_empty_values(data)


class JsonObject(Value):
    """A free-form JSON object (hyperparameters, environment) of finite numbers; null means {}."""

    default_error_messages = {"invalid": "must be a JSON object of name -> value.", "finite": FINITE_MESSAGE}

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            self.fail("invalid")
        if not _finite(data):
            self.fail("finite")
        return data

    def to_representation(self, value):
        return value


class Tags(Value):
    """Short words, stored without duplicates and sorted. Reads a version's tag manager (prefetched)."""

    empty = list

    default_error_messages = {"invalid": "must be a list of short words (letters, digits, '.', ':', '-', '_')."}

    def to_internal_value(self, data):
        if not isinstance(data, list) or not all(isinstance(tag, str) and TAG.match(tag) for tag in data):
            self.fail("invalid")
        return sorted(set(data))

    def to_representation(self, value):
        return sorted(tag.name for tag in value.all()) if hasattr(value, "all") else sorted(value)


class Metrics(Value):
    """name -> finite number, stored as floats. Reads a version's metric rows (prefetched)."""

    default_error_messages = {"invalid": "must be a JSON object of name -> number."}

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            self.fail("invalid")
        problems = []
        for name, value in data.items():
            if not METRIC_NAME.match(name):
                problems.append(f"Metric name {name!r} is not allowed; use letters, digits and . _ - : / @.")
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                problems.append(f"Metric {name!r} must be a finite number, got {json.dumps(value)}.")
        if problems:
            raise serializers.ValidationError(problems)
        return {name: float(value) for name, value in data.items()}

    def to_representation(self, value):
        return {metric.name: metric.value for metric in value.all()} if hasattr(value, "all") else dict(value)


# -- serializers ------------------------------------------------------------------------------------------------------


class Part(serializers.Serializer):
    """A part of the document: an object whose keys are all declared. `what` says what to send, `items` what a list of it holds."""

    what = ""
    items = ""

    @classmethod
    def messages(cls) -> dict:
        what, items = (text.replace("{", "{{").replace("}", "}}") for text in (cls.what, cls.items or cls.what))  # DRF formats messages
        return {"invalid": f"must be {what}.", "null": f"must be {what}.", "not_a_list": f"must be a list of {items}."}

    def __init__(self, *args, **kwargs):
        kwargs["error_messages"] = {**self.messages(), **kwargs.get("error_messages", {})}
        super().__init__(*args, **kwargs)

    @classmethod
    def many_init(cls, *args, **kwargs):
        kwargs["error_messages"] = {**cls.messages(), **kwargs.get("error_messages", {})}
        return super().many_init(*args, **kwargs)

    def unknown_keys_message(self, unknown: list[str]) -> str:
        return f"unknown keys {', '.join(unknown)}; must be {self.what}."

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - {name for name, f in self.fields.items() if not f.read_only})
            if unknown:
                raise serializers.ValidationError({serializers.api_settings.NON_FIELD_ERRORS_KEY: [self.unknown_keys_message(unknown)]})
        return super().to_internal_value(data)


def no_control_characters(value: str) -> None:
    if any(ord(ch) < 32 for ch in value):
        raise serializers.ValidationError("must not contain control characters.")


class DatasetSerializer(Part):
    """A dataset a version was trained or evaluated on. Reads a version's dataset link (`VersionDataset`).

    Also the rules of a dataset registered on its own (`apps.lineage.services.dataset_register`, the datasets API):
    name, URI and digest are trimmed, so the same dataset is the same (URI, digest) whichever way it arrives."""

    what = "an object with at least 'name' and 'uri'"
    items = "{name, uri, digest, role}"

    id = serializers.IntegerField(source="dataset_id", read_only=True)
    name = Text(source="dataset.name", required=True, allow_blank=False, trim_whitespace=True, max_length=200)
    uri = Text(source="dataset.uri", required=True, allow_blank=False, trim_whitespace=True, max_length=1000, validators=[no_control_characters])
    digest = Text(source="dataset.digest", trim_whitespace=True, max_length=200, validators=[no_control_characters])
    size_bytes = WholeNumber(
        source="dataset.size_bytes", required=False, allow_null=True, default=None, min_value=0, max_value=2**63 - 1,
        error_messages={k: "must be a whole number of bytes (0 or more)." for k in ("invalid", "min_value", "max_value", "max_string_length")},
    )
    description = Text(source="dataset.description", write_only=True, max_length=5000)
    role = Choice(choices=DatasetRole.choices, default=DatasetRole.TRAINING, error_messages={"invalid_choice": "must be 'training' or 'evaluation'."})


class CodeSerializer(Part):
    """The code a version was trained from. Reads the version's code_* columns."""

    what = "an object with repository, commit, branch and dirty"

    repository = Text(source="code_repository", max_length=500)
    commit = Text(source="code_commit", max_length=64)
    branch = Text(source="code_branch", max_length=255)
    dirty = TrueOrFalse(source="code_dirty", required=False, allow_null=True, default=None, error_messages={"invalid": "must be true or false."})

    def validate_commit(self, value: str) -> str:
        if value and not COMMIT_SHA.match(value):
            raise serializers.ValidationError("must be a hexadecimal commit SHA (7-64 characters).")
        return value.lower()


class DependenciesSerializer(Part):
    """What the version needs to run. Reads the version's columns of the same names."""

    what = "an object with requirements, python_version, framework and framework_version"

    requirements = Text(max_length=100000)
    python_version = Text(max_length=32)
    framework = Text(max_length=64)
    framework_version = Text(max_length=64)


def run_url_error(url: str) -> str | None:
    """Why a training run URL is refused (None if it is fine). The URL is only stored and shown as a link."""
    if len(url) > 1000:
        return "must be at most 1000 characters."
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        return "must not contain spaces or control characters."
    try:
        parts = urlsplit(url)
    except ValueError:
        return "is not a valid URL."
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host."
    return None


class RunSerializer(Part):
    """The training run (an MLflow or W&B run) that produced the version. Reads a `TrainingRun`."""

    what = "an object with 'id' and/or 'url' of the training run (e.g. an MLflow or W&B run)"

    id = Text(source="run_id", max_length=200)
    url = Text(max_length=1000)

    def validate_url(self, value: str) -> str:
        problem = run_url_error(value) if value else None
        if problem:
            raise serializers.ValidationError(problem)
        return value

    def validate(self, attrs):
        if not attrs.get("run_id") and not attrs.get("url"):
            raise serializers.ValidationError("give the run's 'id', its 'url' or both.")
        return attrs


class ParentList(serializers.ListSerializer):
    """At most MAX_PARENTS parents, each listed once."""

    def to_internal_value(self, data):
        if isinstance(data, list) and len(data) > MAX_PARENTS:
            raise serializers.ValidationError(f"at most {MAX_PARENTS} parents.")
        parents = super().to_internal_value(data)
        seen, problems = set(), []
        for index, item in enumerate(parents):
            key = (item["parent"]["model"]["name"], item["parent"]["number"])
            if key in seen:
                problems.append(f"Parent #{index + 1}: {key[0]} v{key[1]} is listed twice.")
            seen.add(key)
        if problems:
            raise serializers.ValidationError(problems)
        return parents


MODEL_NAME_MESSAGE = "must be a model name."
VERSION_NUMBER_MESSAGE = "must be a version number (1 or more)."
RELATION_MESSAGE = f"must be one of {', '.join(ParentRelation.values)}."


class ParentSerializer(Part):
    """A version this one derives from. Reads a `VersionParent`."""

    what = "an object with 'model', 'version' and 'relation'"
    items = "{model, version, relation}"

    model = Text(source="parent.model.name", required=True, max_length=128, error_messages={k: MODEL_NAME_MESSAGE for k in ("invalid", "required", "null", "max_length")})
    version = WholeNumber(source="parent.number", min_value=1, error_messages={k: VERSION_NUMBER_MESSAGE for k in ("invalid", "min_value", "required", "null")})
    relation = Choice(choices=ParentRelation.choices, error_messages={k: RELATION_MESSAGE for k in ("invalid_choice", "required", "null")})

    class Meta:
        list_serializer_class = ParentList

    def validate_model(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError(MODEL_NAME_MESSAGE)
        return canonical_model_name(value)


class ArtifactSerializer(Part):
    """A file of the version: declared on the way in (path, sha256, in the order of the uploaded files), described on the way out."""

    what = "an object with 'path' and/or 'sha256'"
    items = "{path, sha256} in the order of the uploaded files"

    path = Text(empty=None)
    size = serializers.IntegerField(read_only=True)
    sha256 = Text(empty=None, error_messages={"invalid": "must be 64 hexadecimal characters."})
    content_type = serializers.CharField(read_only=True)
    download_url = serializers.SerializerMethodField()

    def validate_sha256(self, value):
        if value is not None and not SHA256_HEX.match(value.lower()):
            raise serializers.ValidationError("must be 64 hexadecimal characters.")
        return value.lower() if value else None

    def get_download_url(self, artifact) -> str:
        from django.urls import reverse

        version = artifact.version  # set by the prefetch of version.artifacts: no query
        url = reverse("api:artifact-download", kwargs={"name": version.model.name, "number": version.number, "path": artifact.path})
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request is not None else url


class DocumentSerializer(serializers.Serializer):
    """The whole document. Unknown top-level keys are refused; a part sent as null is the same as one left out."""

    default_error_messages = {"null": "Metadata must be a JSON object.", "invalid": "Metadata must be a JSON object."}

    description = Text(max_length=20000)
    flavor = Choice(choices=Flavor.choices, default=Flavor.CUSTOM, error_messages={"invalid_choice": f"Unknown flavor {{input!r}}; use one of {', '.join(Flavor.values)}."})
    tags = Tags()
    hyperparameters = JsonObject()
    metrics = Metrics()
    datasets = DatasetSerializer(many=True, required=False, source="dataset_links")
    code = CodeSerializer(source="*", required=False)
    dependencies = DependenciesSerializer(source="*", required=False)
    environment = JsonObject(error_messages={"invalid": "must be a JSON object (e.g. {\"image\": \"registry/x@sha256:...\"})."})
    run = RunSerializer(source="training_run", required=False, allow_null=True)
    # Not in the version JSON: it is cached for every viewer (the stage endpoint), and which parents a caller may
    # see depends on the caller. The lineage endpoint and the reproduce panel answer per caller.
    parents = ParentSerializer(many=True, required=False, write_only=True, source="parent_links")
    artifacts = ArtifactSerializer(many=True, required=False)

    def to_internal_value(self, data):
        unknown = set(data) - set(self.fields) if isinstance(data, dict) else ()
        if not isinstance(data, dict) or unknown:
            message = f"Unknown keys: {', '.join(sorted(unknown))}. Allowed: {', '.join(sorted(self.fields))}." if unknown else self.error_messages["invalid"]
            raise serializers.ValidationError({serializers.api_settings.NON_FIELD_ERRORS_KEY: [message]})
        return super().to_internal_value({key: value for key, value in data.items() if value is not None and not (key == "run" and value == {})})


def _as_sent(declared: serializers.Field, value):
    """A rendered value without what a client may not send (ids, sizes, URLs the registry adds)."""
    if isinstance(declared, serializers.ListSerializer):
        return [_as_sent(declared.child, item) for item in value]
    if isinstance(declared, serializers.Serializer) and isinstance(value, dict):
        return {key: _as_sent(declared.fields[key], item) for key, item in value.items() if not declared.fields[key].read_only}
    return value


def document_of(version, *, parent_links) -> dict:
    """A registered version's metadata document, exactly as registration accepts it (the reproduce panel prints this).

    `parent_links` are the `VersionParent` rows to list (the caller's choice: the ones the viewer may see); a dataset's
    description is not part of it (the dataset is found again by its URI and digest). Expects `versions_with_details`.
    """
    document = DocumentSerializer()
    rendered = _as_sent(document, document.to_representation(version))
    rendered["parents"] = ParentSerializer(parent_links, many=True).data
    return {name: rendered[name] for name in document.fields}


# -- the registration's view of the document ------------------------------------------------------------------------


@dataclass
class DeclaredArtifact:
    path: str | None = None
    sha256: str | None = None


@dataclass
class VersionMetadata:
    """A checked document in its own keys: what `version_register` takes."""

    description: str = ""
    flavor: str = Flavor.CUSTOM
    tags: list[str] = field(default_factory=list)
    hyperparameters: dict = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    datasets: list[dict] = field(default_factory=list)
    code: dict = field(default_factory=dict)
    dependencies: dict = field(default_factory=dict)
    environment: dict = field(default_factory=dict)
    artifacts: list[DeclaredArtifact] = field(default_factory=list)
    run: dict = field(default_factory=dict)
    parents: list[dict] = field(default_factory=list)


def _in_document_keys(part: serializers.Serializer, validated: dict) -> dict:
    """A part's validated data (keyed by where its values live on a version) in the document's own keys; {} when not sent."""
    out = {}
    for name, declared in part.fields.items():
        if declared.read_only:
            continue
        value = validated
        for attr in declared.source_attrs:
            if attr not in value:
                return {}
            value = value[attr]
        out[name] = value
    return out


def document_from_validated(validated: dict) -> VersionMetadata:
    fields = DocumentSerializer().fields
    return VersionMetadata(
        description=validated["description"],
        flavor=validated["flavor"],
        tags=validated["tags"],
        hyperparameters=validated["hyperparameters"],
        metrics=validated["metrics"],
        datasets=[_in_document_keys(fields["datasets"].child, item) for item in validated.get("dataset_links", [])],
        code=_in_document_keys(fields["code"], validated),
        dependencies=_in_document_keys(fields["dependencies"], validated),
        environment=validated["environment"],
        artifacts=[DeclaredArtifact(**item) for item in validated.get("artifacts", [])],
        run=_in_document_keys(fields["run"], validated.get("training_run") or {}),
        parents=[_in_document_keys(fields["parents"].child, item) for item in validated.get("parent_links", [])],
    )


# -- errors: one message list per top-level key, as the API has always answered --------------------------------------

ITEM_LABELS = {"datasets": "Dataset", "parents": "Parent", "artifacts": "Artifact"}


def error_paths(detail, path: tuple = ()) -> list[tuple[tuple, str]]:
    """Every message of a serializer's errors with the path to the value it is about: (("code", "commit"), "...")."""
    if isinstance(detail, dict):
        return [pair for key, value in detail.items() for pair in error_paths(value, path if key == serializers.api_settings.NON_FIELD_ERRORS_KEY else path + (key,))]
    if isinstance(detail, list):
        if any(isinstance(item, (dict, list)) for item in detail):
            return [pair for index, item in enumerate(detail) for pair in error_paths(item, path + (index,))]
        return [(path, str(message)) for message in detail]
    return [(path, str(detail))]


def message_for(path: tuple, message: str) -> str:
    """A message that names what it is about inside its top-level key: "Dataset #2: 'uri' is required."."""
    label = ""
    rest = list(path[1:])
    if rest and isinstance(rest[0], int):
        label = f"{ITEM_LABELS.get(path[0], 'Item')} #{rest.pop(0) + 1}"
    if rest:
        label = f"{label}: '{rest[0]}'" if label else f"'{rest[0]}'"
        return f"{label} {message}"
    return f"{label}: {message}" if label else message


def document_check(document) -> tuple[VersionMetadata | None, list[tuple[tuple, str]]]:
    """Check a metadata document: (the checked document, []) or (None, [(path, message), ...])."""
    if isinstance(document, dict):
        stored = json_document_errors(document, whole="metadata")  # before anything else: a field the database cannot store stops here
        if stored:
            return None, [((key,) if key != "metadata" else (), message) for key, messages in stored.items() for message in messages]
    checked = DocumentSerializer(data=document)
    if not checked.is_valid():
        return None, error_paths(checked.errors)
    return document_from_validated(checked.validated_data), []


def metadata_from_dict(document) -> VersionMetadata:
    """Check a metadata document. Raises ValidationError keyed by top-level key with messages that say what to fix."""
    metadata, problems = document_check(document)
    if problems:
        errors: dict[str, list[str]] = {}
        for path, message in problems:
            errors.setdefault(path[0] if path else "metadata", []).append(message_for(path, message))
        raise ValidationError(errors)
    return metadata


def metadata_from_json(raw: str | bytes) -> VersionMetadata:
    """Parse the metadata JSON text. Raises ValidationError with a message that says what to fix."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    if len(raw.encode("utf-8", errors="surrogatepass")) > settings.METADATA_MAX_BYTES:
        raise ValidationError(
            {"metadata": f"Metadata is larger than {settings.METADATA_MAX_BYTES} bytes; keep large files (requirements, configs) as artifacts."}
        )
    return metadata_from_dict(json_loads_checked(raw, field="metadata"))
