import json

import pytest
from django.core.exceptions import ValidationError

from apps.versions.document import metadata_from_json


def test_a_full_document_parses():
    meta = metadata_from_json(
        json.dumps(
            {
                "flavor": "onnx", "tags": ["a"], "metrics": {"acc": 1, "loss": 0.25}, "hyperparameters": {"layers": [1, 2]},
                "datasets": [{"name": "d", "uri": "s3://x", "role": "evaluation"}],
                "code": {"commit": "abc1234"}, "dependencies": {"python_version": "3.11"}, "environment": {"image": "img"},
                "artifacts": [{"path": "m.onnx", "sha256": "A" * 64}],
            }
        )
    )
    assert meta.metrics == {"acc": 1.0, "loss": 0.25} and meta.artifacts[0].sha256 == "a" * 64


@pytest.mark.parametrize(
    "text, field, fragment",
    [
        ("{not json", "metadata", "not valid JSON"),
        ("[1, 2]", "metadata", "JSON object"),
        ('{"metrics": {"acc": "high"}}', "metrics", "finite number"),
        ('{"metrics": {"acc": true}}', "metrics", "finite number"),
        ('{"metrics": {"acc": NaN}}', "metadata", "not valid JSON"),
        ('{"metrics": {"acc": Infinity}}', "metadata", "not valid JSON"),
        ('{"metrics": [1]}', "metrics", "name -> number"),
        ('{"metrics": {"a b": 1}}', "metrics", "not allowed"),
        ('{"hyperparameters": [1]}', "hyperparameters", "JSON object"),
        ('{"flavor": "keras2"}', "flavor", "Unknown flavor"),
        ('{"datasets": [{"name": "x"}]}', "datasets", "'uri'"),
        ('{"code": {"commit": "not-a-sha"}}', "code", "hexadecimal"),
        ('{"code": {"dirty": "yes"}}', "code", "true or false"),
        ('{"artifacts": [{"sha256": "xyz"}]}', "artifacts", "64 hexadecimal"),
        ('{"surprise": 1}', "metadata", "Unknown keys"),
        ('{"tags": ["<b>"]}', "tags", "short words"),
    ],
)
def test_bad_metadata_names_the_field_and_the_fix(text, field, fragment):
    with pytest.raises(ValidationError) as caught:
        metadata_from_json(text)
    assert fragment in " ".join(caught.value.message_dict[field])


def test_oversized_metadata_is_refused(settings):
    settings.METADATA_MAX_BYTES = 1000
    with pytest.raises(ValidationError, match="larger than 1000 bytes"):
        metadata_from_json(json.dumps({"description": "x" * 2000}))


def test_deeply_nested_json_is_refused_not_crashing():
    with pytest.raises(ValidationError, match="nests deeper than 64 levels"):
        metadata_from_json("[" * 100000 + "]" * 100000)
