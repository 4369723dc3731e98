"""Subcommands of `labline`: one module per group, each with `register(subparsers)`."""
