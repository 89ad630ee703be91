"""`alias set|delete|get|list|history`: a model's named pointers (`champion`, `eu-prod`, the built-in `production`).

An alias whose policy asks for approvals is not moved by `alias set`: the registry answers which request to open.
`alias set --request` opens it (a transition request for the alias; applied at once when no approval is needed).
"""

import json
from urllib.parse import quote, urlencode

from ..client import Client

JSON = {"Content-Type": "application/json"}


def _alias_path(args) -> str:
    return f"/api/v1/models/{quote(args.model, safe='')}/aliases/{quote(args.alias, safe='')}/"


def command_alias_set(client: Client, args) -> dict:
    if args.request:
        body = json.dumps({"alias": args.alias, "comment": args.comment or ""})
        path = f"/api/v1/models/{quote(args.model, safe='')}/versions/{args.version}/transitions/"
        return client.request("POST", path, body=body, headers=JSON)
    return client.request("PUT", _alias_path(args), body=json.dumps({"version": args.version, "comment": args.comment or ""}), headers=JSON)


def command_alias_delete(client: Client, args) -> dict:
    client.request("DELETE", _alias_path(args), body=json.dumps({"comment": args.comment or ""}), headers=JSON)
    return {"model": args.model, "alias": args.alias, "deleted": True}


def command_alias_get(client: Client, args) -> dict:
    return client.request("GET", _alias_path(args))


def command_alias_list(client: Client, args) -> dict:
    return client.get_all(f"/api/v1/models/{quote(args.model, safe='')}/aliases/", "results")


def command_alias_history(client: Client, args) -> dict:
    if args.at:
        return client.request("GET", f"{_alias_path(args)}history/?{urlencode({'at': args.at})}")
    return client.get_all(f"{_alias_path(args)}history/", "history")


def add_commands(commands) -> None:
    alias = commands.add_parser("alias", help="read and move a model's aliases (champion, eu-prod, production)")
    actions = alias.add_subparsers(dest="alias_command", required=True)
    set_ = actions.add_parser("set", help="point an alias at a version (a governed alias: add --request to ask for review)")
    set_.add_argument("model")
    set_.add_argument("alias")
    set_.add_argument("version", type=int)
    set_.add_argument("--comment", help="why (kept in the alias's history; reviewers read it)")
    set_.add_argument("--request", action="store_true", help="open a transition request for the alias instead of moving it directly")
    set_.set_defaults(run=command_alias_set)
    delete = actions.add_parser("delete", help="delete an alias (a governed one: managers)")
    delete.add_argument("model")
    delete.add_argument("alias")
    delete.add_argument("--comment")
    delete.set_defaults(run=command_alias_delete)
    get = actions.add_parser("get", help="print the JSON of the version an alias points at")
    get.add_argument("model")
    get.add_argument("alias")
    get.set_defaults(run=command_alias_get)
    listing = actions.add_parser("list", help="list all of a model's free aliases")
    listing.add_argument("model")
    listing.set_defaults(run=command_alias_list)
    history = actions.add_parser("history", help="an alias's whole history, newest first, or with --at the version it pointed at then")
    history.add_argument("model")
    history.add_argument("alias")
    history.add_argument("--at", help="an ISO 8601 instant with a time zone, e.g. 2026-11-27T10:00:00Z")
    history.set_defaults(run=command_alias_history)
