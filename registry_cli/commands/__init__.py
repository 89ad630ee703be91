"""One module per command group; each has `add_commands(commands)` and is named in `registry_cli.main.COMMAND_GROUPS`."""
