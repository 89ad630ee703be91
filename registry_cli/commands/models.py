"""`create-model`."""

import json

from ..client import Client


def command_create_model(client: Client, args) -> dict:
    payload = json.dumps({"name": args.name, "description": args.description or "", "tags": args.tag or []})
    return client.request("POST", "/api/v1/models/", body=payload, headers={"Content-Type": "application/json"})


def add_commands(commands) -> None:
    create = commands.add_parser("create-model", help="register a model (you become its manager)")
    create.add_argument("name")
    create.add_argument("--description")
    create.add_argument("--tag", action="append")
    create.set_defaults(run=command_create_model)
