"""`card get|set|from-readme`: a model's card (NAME) or a version's (NAME/N).

    model-registry card get churn/3
    model-registry card set churn --license apache-2.0 --body-file CARD.md --intended-use "Churn scores for EU accounts"
    model-registry card from-readme churn/3        # the README.md registered with v3, YAML front matter included
"""

import json
from pathlib import Path
from urllib.parse import quote

from ..client import CliError, Client

JSON = {"Content-Type": "application/json"}
FIELDS = ("license", "intended_use", "limitations", "training_data")


def _card_path(target: str, *, version_required: bool = False) -> str:
    name, _, number = target.partition("/")
    if not name or (number and not number.isdigit()) or (version_required and not number):
        shape = "NAME/N (a version)" if version_required else "NAME (the model's card) or NAME/N (a version's)"
        raise CliError(f"{target!r} is not {shape}.")
    base = f"/api/v1/models/{quote(name, safe='')}/"
    return f"{base}versions/{number}/card/" if number else f"{base}card/"


def command_card_get(client: Client, args) -> dict:
    return client.request("GET", _card_path(args.target))


def command_card_set(client: Client, args) -> dict:
    """Replaces the card: the fields given, and the body from --body-file; what is not given is written empty."""
    body = {field: getattr(args, field) for field in FIELDS if getattr(args, field) is not None}
    if args.body_file:
        try:
            body["body"] = Path(args.body_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"Cannot read {args.body_file}: {exc}.") from exc
    return client.request("PUT", _card_path(args.target), body=json.dumps(body), headers=JSON)


def command_card_from_readme(client: Client, args) -> dict:
    return client.request("POST", _card_path(args.target, version_required=True) + "from-readme/")


def add_commands(commands) -> None:
    card = commands.add_parser("card", help="read or write a model's or a version's card")
    actions = card.add_subparsers(dest="card_command", required=True)
    get = actions.add_parser("get", help="print a card and its evaluation results")
    get.add_argument("target", help="NAME (the model's card) or NAME/N (a version's)")
    get.set_defaults(run=command_card_get)
    set_ = actions.add_parser("set", help="replace a card (fields not given are written empty)")
    set_.add_argument("target", help="NAME (the model's card, managers) or NAME/N (a version's)")
    set_.add_argument("--body-file", help="the card's Markdown")
    set_.add_argument("--license")
    set_.add_argument("--intended-use", dest="intended_use")
    set_.add_argument("--limitations")
    set_.add_argument("--training-data", dest="training_data")
    set_.set_defaults(run=command_card_set)
    readme = actions.add_parser("from-readme", help="fill a version's card from the README.md in its files")
    readme.add_argument("target", help="NAME/N")
    readme.set_defaults(run=command_card_from_readme)
