"""`gex user add|passwd|remove|list`: the built-in accounts of `GEX_AUTH=password`.

Passwords are read with getpass (typed twice), or as one line from stdin with
`--password-stdin` (for scripts); never from the command line, where `ps` would show them.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from pathlib import Path

from gexcore.errors import InputError

__all__ = ["add_user_command"]


def add_user_command(sub) -> None:
    """Register `gex user ...` on the `gex` subparsers."""
    from gexcore.workspace.identity import default_base

    p = sub.add_parser("user", help="manage the sign-in accounts (GEX_AUTH=password)",
                       description="Accounts live in <workspaces>/server.sqlite, passwords as "
                                   "argon2id hashes; changes go to <workspaces>/audit.log.")
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--workspace", type=Path, default=default_base(), metavar="DIR",
                       help="the folder holding the workspaces (default: $GEX_WORKSPACE, else "
                            "./workspace beside app.py)")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = actions.add_parser("add", help="create an account", parents=[where])
    a.add_argument("name")
    a.add_argument("--admin", action="store_true", help="may read the audit log (admin page)")
    a.add_argument("--password-stdin", action="store_true",
                   help="read the password as one line from stdin")
    a = actions.add_parser("passwd", help="set a new password (signs the user's sessions out)",
                           parents=[where])
    a.add_argument("name")
    a.add_argument("--password-stdin", action="store_true",
                   help="read the password as one line from stdin")
    a = actions.add_parser("remove", help="delete an account (its workspace stays on disk)",
                           parents=[where])
    a.add_argument("name")
    actions.add_parser("list", help="list the accounts", parents=[where])
    p.set_defaults(func=_cmd_user)


def _cmd_user(args: argparse.Namespace) -> int:
    from gexcore.workspace.accounts import Accounts

    accounts = Accounts(args.workspace)
    if args.action == "list":
        for acc in accounts.list():
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(acc.changed))
            print(f"{acc.name}\t{'admin' if acc.admin else 'user'}\tpassword set {when}")
        return 0
    if args.action == "remove":
        accounts.remove(args.name)
        print(f"removed user {args.name} (the workspace {args.workspace / args.name} is kept)")
        return 0
    password = _read_password(args.password_stdin)
    if args.action == "add":
        accounts.add(args.name, password, admin=args.admin)
        print(f"added user {args.name}{' (admin)' if args.admin else ''}")
    else:
        accounts.set_password(args.name, password)
        print(f"changed the password of {args.name}")
    return 0


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise InputError("no terminal to ask for the password; pass --password-stdin and "
                         "write it to stdin.")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise InputError("the two passwords differ; nothing changed.")
    return first
