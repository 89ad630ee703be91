"""The OpenAPI schema: valid OpenAPI 3, every API URL in it, behind a login, real answers matching it; the docs pages."""

import re

import pytest
from django.urls import URLPattern
from drf_spectacular.validation import validate_schema
from openapi_schema_validator import OAS30Validator

from apps.approvals.aliases import api_urls as alias_api_urls
from apps.cards import api_urls as card_api_urls
from apps.lineage import api_urls as lineage_api_urls
from registry_site import api_urls
from tests.factories import register_version

pytestmark = pytest.mark.django_db


def _schema(api) -> dict:
    response = api.get("/api/v1/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200 and response["Content-Type"].startswith("application/json")
    return response.json()


def _openapi_path(route: str) -> str:
    route = re.sub(r"<int:pk>", "{id}", route)
    return "/api/v1/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)


def _api_routes() -> list[str]:
    routes = [str(p.pattern) for p in api_urls.urlpatterns + lineage_api_urls.urlpatterns + alias_api_urls.urlpatterns + card_api_urls.urlpatterns if isinstance(p, URLPattern)]
    return [route for route in routes if route not in ("^.*$", "schema/", "docs/", "docs/redoc/")]


def test_the_schema_is_valid_openapi_3_and_lists_every_api_url(api_for, owner):
    schema = _schema(api_for(owner))
    validate_schema(schema)
    assert schema["openapi"].startswith("3.")
    routes = _api_routes()
    assert len(routes) >= 20
    for route in routes:
        assert _openapi_path(route) in schema["paths"], route
    assert "/api/v1/." not in schema["paths"]  # the JSON 404 catch-all is not an endpoint


def test_every_operation_documents_its_errors_with_the_one_envelope(api_for, owner):
    schema = _schema(api_for(owner))
    envelope = {"$ref": "#/components/schemas/ErrorEnvelope"}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert {"401", "429", "503"} <= set(responses), (method, path)
            for status in (s for s in responses if s.startswith(("4", "5"))):
                assert responses[status]["content"]["application/json"]["schema"] == envelope, (method, path, status)
    list_parameters = {p["name"] for p in schema["paths"]["/api/v1/models/{name}/versions/"]["get"]["parameters"]}
    assert {"stage", "tag", "flavor", "dataset", "registered_by", "created_after", "created_before", "ordering", "page", "page_size"} <= list_parameters
    assert set(schema["paths"]["/api/v1/models/{name}/"]) >= {"get", "patch"}


def test_the_schema_and_docs_need_a_login_or_a_token(client, api_for, owner):
    for url in ("/api/v1/schema/", "/api/v1/docs/", "/api/v1/docs/redoc/"):
        assert client.get(url).status_code == 401, url
    assert api_for(owner).get("/api/v1/schema/?format=yaml").content.startswith(b"openapi: 3.")


def test_the_docs_pages_load_swagger_ui_and_redoc_from_our_static_files(client, owner):
    client.force_login(owner)
    for url, asset in (("/api/v1/docs/", "swagger-ui-bundle.js"), ("/api/v1/docs/redoc/", "redoc.standalone.js")):
        page = client.get(url).content.decode()
        [script] = [src for src in re.findall(r'src="([^"]+)"', page) if src.endswith(asset)]
        assert script.startswith("/static/"), script  # no CDN
        assert b"".join(client.get(script).streaming_content)  # served by whitenoise
        assert "/api/v1/schema/" in page


def _resolved(node, components: dict):
    """The schema with every local $ref replaced by its component, for a plain JSON Schema validator."""
    if isinstance(node, dict):
        if "$ref" in node:
            return _resolved(components[node["$ref"].rsplit("/", 1)[1]], components)
        if node.get("nullable") and len(node.get("allOf", ())) == 1:
            # drf-spectacular writes a nullable nested object as {allOf: [$ref], nullable: true} (OpenAPI 3.0 has no
            # nullable $ref); a JSON Schema validator then applies the $ref alone, so fold the two together.
            rest = {key: value for key, value in node.items() if key != "allOf"}
            return {**_resolved(node["allOf"][0], components), **_resolved(rest, components)}
        return {key: _resolved(value, components) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolved(item, components) for item in node]
    return node


@pytest.mark.parametrize(
    "method, url, status",
    [
        ("get", "/api/v1/models/", 200),
        ("get", "/api/v1/models/sentiment/", 200),
        ("get", "/api/v1/models/sentiment/versions/", 200),
        ("get", "/api/v1/models/sentiment/versions/1/", 200),
        ("get", "/api/v1/models/sentiment/history/production/", 200),
        ("get", "/api/v1/datasets/", 200),
        ("get", "/api/v1/models/sentiment/versions/?stage=prod", 400),
        ("get", "/api/v1/models/nothing/", 404),
    ],
)
def test_real_answers_match_the_schema(api_for, owner, model, method, url, status):
    register_version(model, owner, metrics={"accuracy": 0.9}, tags=["nlp"], datasets=[{"name": "imdb", "uri": "s3://d/imdb", "role": "training"}])
    api = api_for(owner)
    schema = _schema(api)
    path = url.split("?")[0].replace("/sentiment/", "/{name}/").replace("/nothing/", "/{name}/").replace("/versions/1/", "/versions/{number}/")
    response = getattr(api, method)(url)
    assert response.status_code == status
    declared = schema["paths"][path][method]["responses"][str(status)]["content"]["application/json"]["schema"]
    OAS30Validator(_resolved(declared, schema["components"]["schemas"])).validate(response.json())
