"""The apps depend one way (README, "How the apps depend on each other").

Walks the imports of apps/ with `ast` (function-local imports included) and classifies each module as domain
(models, services, selectors, tasks, checks, lifecycle, ...) or web (views, api, forms, admin, templatetags, urls,
request documents, ...). A domain module may import its own app and the layers below it, never an app above or
beside it; web modules may read downward and across. `apps.web` (the shared web helpers) imports no app.
"""

import ast
from collections import defaultdict
from pathlib import Path

from django.conf import settings

# Lowest first. Apps in one layer may not import each other's domain modules.
LAYERS: list[tuple[str, ...]] = [
    ("web", "audit"),
    ("accounts",),
    ("models",),
    ("events", "notifications"),
    ("versions",),
    ("lineage", "validation", "signing"),
    ("cards",),
    ("catalog",),
    ("approvals",),
    ("mlflow_api", "comments"),
]
RANK = {app: rank for rank, layer in enumerate(LAYERS) for app in layer}

# Module names (any part of the dotted path inside an app) that make a module part of the web layer.
WEB_PARTS = {
    "views", "api", "api_urls", "urls", "forms", "admin", "templatetags", "filters", "serializers", "middleware",
    "management", "migrations", "apps", "parsers", "authentication", "idempotency", "uploads", "downloads", "spool",
    "metadata", "document", "api_lists", "upload_api", "upload_urls",
}

# Upward imports between domain modules still to be removed (each is a finding of this test, not a permission).
KNOWN_UPWARD: set[tuple[str, str]] = set()


def _modules() -> dict[str, Path]:
    root = Path(settings.BASE_DIR) / "apps"
    found = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(path: Path) -> set[str]:
    """Every `apps.…` module named by an import anywhere in the file (function-local imports included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name.startswith("apps.")}


def _app(module: str) -> str:
    return module.split(".")[1]


def _is_web(module: str) -> bool:
    parts = module.split(".")
    return parts[1] == "web" or any(part in WEB_PARTS for part in parts[2:])


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The module an imported name belongs to (`apps.x.models.Thing` -> `apps.x.models`)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def domain_edges() -> dict[tuple[str, str], set[str]]:
    """(importing app, imported app) -> the domain modules of the first that import any module of the second."""
    modules = _modules()
    edges: dict[tuple[str, str], set[str]] = defaultdict(set)
    for module, path in modules.items():
        if module.count(".") < 2 or _is_web(module):
            continue
        for name in _imports(path):
            target = _resolve(name, modules)
            if target is None or target.count(".") < 2 or _app(target) == _app(module):
                continue
            edges[(_app(module), _app(target))].add(module)
    return edges


def test_every_app_has_a_layer():
    apps = {module.split(".")[1] for module in _modules() if module.count(".") >= 1}
    assert apps <= set(RANK), f"Give these apps a layer in LAYERS (and the README): {sorted(apps - set(RANK))}"


def test_domain_modules_import_only_their_own_app_and_the_layers_below():
    wrong = {}
    for (source, target), importers in domain_edges().items():
        if RANK[target] >= RANK[source]:
            wrong[(source, target)] = sorted(importers)
    unexpected = {edge: importers for edge, importers in wrong.items() if edge not in KNOWN_UPWARD}
    assert not unexpected, f"Domain modules importing upward or beside them: {unexpected}"
    assert not KNOWN_UPWARD - set(wrong), f"Fixed, take them off KNOWN_UPWARD: {sorted(KNOWN_UPWARD - set(wrong))}"


def test_the_apps_domain_modules_form_no_import_cycle():
    graph: dict[str, set[str]] = defaultdict(set)
    for source, target in domain_edges():
        graph[source].add(target)
    cycles = []

    def visit(app: str, path: list[str]) -> None:
        for nxt in sorted(graph[app]):
            if nxt in path:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif len(path) < len(RANK):
                visit(nxt, path + [nxt])

    for app in sorted(graph):
        visit(app, [app])
    assert not cycles, f"Import cycles between apps' domain modules: {cycles[:5]}"


def test_the_shared_web_helpers_import_no_app():
    modules = _modules()
    for module, path in modules.items():
        if module.startswith("apps.web"):
            assert not {name for name in _imports(path) if not name.startswith("apps.web")}, module
