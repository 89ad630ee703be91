"""A version's files tab: folders, sizes and digests, previews of text files (escaped, size-capped, read through the
storage: local disk and S3), the safetensors tensor table, and the "Use this version" snippets."""

import json

import pytest

from apps.catalog.files import PREVIEW_MAX_BYTES
from tests.factories import register_version, sha256
from tests.helpers import queries_for, safetensors, safetensors_with_header
from tests.s3 import moto_endpoint_fixture, s3_fixture  # noqa: F401  (fixtures: a moto S3 server and a fresh bucket)

pytestmark = pytest.mark.django_db

FILES = {
    "config.json": b'{"hidden_size": 4, "name": "<script>alert(1)</script>"}',
    "README.md": b"---\nlicense: mit\n---\n# Sentiment\n\n<img src=x onerror=alert(1)> **bold**\n",
    "params.yaml": b"lr: 0.001\nlabels: [neg, pos]\n",
    "weights/model.safetensors": safetensors({"encoder.weight": ("F32", [4, 2]), "encoder.bias": ("F16", [4])}),
    "weights/shards/part-1.bin": b"\x00\x01\x02binary",
    "big.txt": b"x" * (PREVIEW_MAX_BYTES + 10),
}


def files_url(model, number=1, **params):
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return f"/models/{model.name}/versions/{number}/files/" + (f"?{query}" if query else "")


def test_the_top_folder_lists_folders_with_totals_and_files_with_digests(web_for, owner, model):
    register_version(model, owner, files=FILES)
    page = web_for(owner).get(files_url(model)).content.decode()
    assert "weights/</a>" in page and "2 files" in page
    assert sha256(FILES["config.json"]) in page and "model.safetensors" not in page  # one folder at a time
    inner = web_for(owner).get(files_url(model, dir="weights/")).content.decode()
    assert "model.safetensors" in inner and "shards/</a>" in inner and "config.json</a>" not in inner
    assert web_for(owner).get(files_url(model, dir="nothing/")).status_code == 404
    assert web_for(owner).get(files_url(model, dir="../weights/")).status_code == 200  # ".." climbs nowhere: weights/


def test_text_json_markdown_and_yaml_previews_are_escaped(web_for, owner, model):
    register_version(model, owner, files=FILES)
    client = web_for(owner)
    config = client.get(files_url(model, path="config.json")).content.decode()
    assert '&quot;hidden_size&quot;: 4' in config and "<script>alert(1)" not in config and "&lt;script&gt;" in config
    readme = client.get(files_url(model, path="README.md")).content.decode()
    assert "<h1>Sentiment</h1>" in readme and "<strong>bold</strong>" in readme and "<img src=x" not in readme
    yaml = client.get(files_url(model, path="params.yaml")).content.decode()
    assert "labels: [neg, pos]" in yaml
    binary = client.get(files_url(model, path="weights/shards/part-1.bin")).content.decode()
    assert "no preview" in binary
    big = client.get(files_url(model, path="big.txt")).content.decode()
    assert "Only the first" in big and "x" * (PREVIEW_MAX_BYTES + 1) not in big
    assert client.get(files_url(model, path="missing.txt")).status_code == 404


def test_a_safetensors_file_shows_its_tensor_table_and_a_corrupt_one_says_why(web_for, owner, model):
    register_version(model, owner, files={**FILES, "bad.safetensors": safetensors_with_header(b'{"w": {"dtype": "F32"', b"")})
    client = web_for(owner)
    page = client.get(files_url(model, path="weights/model.safetensors")).content.decode()
    table = page[page.index('id="tensor-table"'):]
    assert "encoder.weight" in table and "F32" in table and "[4, 2]" in table and "encoder.bias" in table and "[4]" in table
    bad = client.get(files_url(model, path="bad.safetensors")).content.decode()
    assert "The header cannot be read" in bad


def test_use_this_version_offers_the_cli_curl_and_mlflow_snippets(web_for, owner, model):
    register_version(model, owner, files=FILES)
    for url in (files_url(model), f"/models/{model.name}/versions/1/"):
        page = web_for(owner).get(url).content.decode()
        assert f"model-registry pull {model.name}/1" in page
        assert f"http://testserver/api/v1/models/{model.name}/versions/1/archive" in page
        assert f'models:/{model.name}/1' in page


def test_the_files_tab_query_count_does_not_grow_and_outsiders_get_404(web_for, owner, outsider, model):
    register_version(model, owner, files={"a.txt": b"a"})
    register_version(model, owner, files={f"d{i}/f{j}.txt": b"x" for i in range(10) for j in range(5)} | {"a.txt": b"b"})
    client = web_for(owner)
    assert queries_for(client, files_url(model, 1, path="a.txt")) == queries_for(client, files_url(model, 2, path="a.txt"))
    assert web_for(outsider).get(files_url(model, path="a.txt")).status_code == 404


def test_previews_read_through_s3(web_for, owner, model, s3):
    register_version(model, owner, files=FILES)
    client = web_for(owner)
    assert "labels: [neg, pos]" in client.get(files_url(model, path="params.yaml")).content.decode()
    page = client.get(files_url(model, path="weights/model.safetensors")).content.decode()
    assert "encoder.weight" in page
    assert json.loads(FILES["config.json"])["hidden_size"] == 4


def test_a_large_folder_and_a_large_header_are_paged(web_for, owner, model, monkeypatch):
    monkeypatch.setattr("apps.versions.views.ENTRIES_PER_PAGE", 3)
    monkeypatch.setattr("apps.versions.views.TENSORS_PER_PAGE", 2)
    weights = safetensors({f"t{i}": ("F32", [1]) for i in range(5)})
    register_version(model, owner, files={"sub/a.txt": b"a", **{f"f{i}.txt": b"x" for i in range(4)}, "w.safetensors": weights})
    client = web_for(owner)
    first, second = (client.get(files_url(model, page=n)).content.decode() for n in (1, 2))
    assert "sub/</a>" in first and "f1.txt</a>" in first and "f2.txt</a>" not in first
    assert "f2.txt</a>" in second and "w.safetensors</a>" in second and "Page 2 of 2" in second
    tensors = client.get(files_url(model, path="w.safetensors", tensors=3)).content.decode()
    table = tensors[tensors.index('id="tensor-table"'):tensors.index("</table>", tensors.index('id="tensor-table"'))]
    assert "<code>t4</code>" in table and "<code>t0</code>" not in table and "tensors=2" in tensors
