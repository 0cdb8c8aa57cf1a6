"""``actortrader users add|list|remove``: manage who may use the API.

Why a prompt or stdin and never an argument: a password on the command line
ends up in shell history and in ``ps`` output for every user of the machine.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from engine.api.users import Role, UserError, UserStore
from engine.config import Config


def add_users_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    users = subparsers.add_parser("users", help="manage API users (viewer, trader, admin)")
    sub = users.add_subparsers(dest="users_command", metavar="{add,list,remove}")
    sub.required = True
    add = sub.add_parser("add", help="add a user; the password is read from a prompt or stdin")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    sub.add_parser("list", help="list users and roles")
    remove = sub.add_parser("remove", help="remove a user (their sessions end at the next refresh)")
    remove.add_argument("name")
    return users


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin or not sys.stdin.isatty():
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    first = getpass.getpass(f"password for {args.name}: ")
    second = getpass.getpass("again: ")
    if first != second:
        raise UserError("passwords do not match")
    return first


def cmd_users(args: argparse.Namespace, cfg: Config, users_path: Path | None = None) -> int:
    """Run one users subcommand; 0 on success, 2 on a user mistake (message on stderr)."""
    store = UserStore(users_path or Path(cfg.api.users_file))
    try:
        if args.users_command == "add":
            store.add(args.name, args.role, _read_password(args))
            print(f"user {args.name!r} added with role {args.role} ({store.path})")
        elif args.users_command == "list":
            found = store.list()
            if not found:
                print(f"no users in {store.path} (the first `actortrader run` creates 'admin')")
            for user in found:
                print(f"{user.name}\t{user.role.value}")
        elif args.users_command == "remove":
            store.remove(args.name)
            _end_sessions(cfg, args.name)
            print(f"user {args.name!r} removed")
        else:
            print(f"users: unknown command {args.users_command!r}; expected add, list or remove", file=sys.stderr)
            return 2
    except UserError as exc:
        print(f"users {args.users_command}: {exc}", file=sys.stderr)
        return 2
    except (EOFError, KeyboardInterrupt):
        print(f"users {args.users_command}: no password given", file=sys.stderr)
        return 2
    return 0


def _end_sessions(cfg: Config, name: str) -> None:
    from engine.api.tokens import RefreshTokenStore

    path = Path(cfg.engine.data_dir) / "api_sessions.json"
    if path.exists():
        RefreshTokenStore(path, cfg.api.refresh_ttl_s).revoke_user(name)
