"""The entry point: builds the parser from the command groups and runs one command.

Configuration: REGISTRY_URL (e.g. https://registry.example.com), REGISTRY_TOKEN (a personal API token),
REGISTRY_RETRIES (retries of what is safe to repeat, default 5).

    model-registry create-model churn --description "Churn model"
    model-registry register churn ./export --metadata meta.json --metric auc=0.91 --param lr=0.001
    model-registry get churn --stage production
    model-registry download churn 3 weights/model.safetensors -o model.safetensors
    model-registry pull churn@champion -o ./model
    model-registry alias set churn champion 3 --comment "best offline AUC"
    model-registry card from-readme churn/3

To add a command: a module in `registry_cli/commands/` with `add_commands(commands)` (argparse sub-parsers, each
`set_defaults(run=function(client, args) -> dict)`), and its name in COMMAND_GROUPS.
"""

import argparse
import importlib
import json
import os
import sys

from .client import CliError, Client

COMMAND_GROUPS = (
    "models",
    "versions",
    "pull",
    "aliases",
    "cards",
)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="model-registry",
        description="The command line client of the model registry.",
        epilog="Set REGISTRY_URL and REGISTRY_TOKEN (a personal API token).",
    )
    commands = root.add_subparsers(dest="command", required=True)
    for name in COMMAND_GROUPS:
        importlib.import_module(f"{__package__}.commands.{name}").add_commands(commands)
    return root


def _retries(value: str) -> int:
    if not value.isdigit() or int(value) > 20:
        raise CliError(f"REGISTRY_RETRIES must be a whole number from 0 to 20, not {value!r}.")
    return int(value)


def main(argv: list[str] | None = None, environ: dict | None = None) -> int:
    environ = os.environ if environ is None else environ
    args = parser().parse_args(argv)
    args.environ = environ
    try:
        url, token = environ.get("REGISTRY_URL", ""), environ.get("REGISTRY_TOKEN", "")
        if not url or not token:
            raise CliError("Set REGISTRY_URL (e.g. https://registry.example.com) and REGISTRY_TOKEN (create one under 'API tokens').")
        result = args.run(Client(url, token, retries=_retries(environ.get("REGISTRY_RETRIES", "5"))), args)
    except CliError as exc:
        print(f"model-registry: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0
