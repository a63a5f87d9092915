"""`git dual config`: edit `.dual.toml` (or the user-wide `config.toml`) the way `git config` edits
git's files: comments, order and formatting kept (tomlkit), and every value checked against its
key's declared type (plugins' keys included) by the one reader (`parse`) before the file is
written, with its file:line:column errors. A key the file has only as a comment (`# serve = ...`,
as `git dual init` writes them) is set where that comment stands."""

from __future__ import annotations

import os
import re
from typing import Any

import tomlkit
from tomlkit.container import Container
from tomlkit.items import AoT, Array, Comment, Item, Table

from dualgit.background import atomic_write, user_config_file
from dualgit.config import FILENAME, parse, parse_user, read_text, read_toml
from dualgit.errors import DualgitError

ACTIONS = ("get", "set", "unset", "add", "remove")


def file_for(worktree: str, user_wide: bool) -> str:
    return user_config_file() if user_wide else os.path.join(worktree, FILENAME)


def value_of(text: str) -> Any:
    """A value as typed on the command line: TOML's own syntax where it is one (3000, true, 1.5,
    [3000, 5173], "quoted"), else the text itself, as a string (npm run dev)."""
    try:
        return tomlkit.parse(f"v = {text}\n")["v"].unwrap()
    except Exception:  # noqa: BLE001 - anything tomlkit refuses is a plain string
        return text


def _split(key: str) -> list[str]:
    parts = key.split(".")
    if not key or any(not p for p in parts):
        raise DualgitError(f"`{key}` is not a key", hint="keys are names, or dotted for a table's: env.NODE_ENV, serve.3000")
    return parts


def _read(file: str) -> tomlkit.TOMLDocument:
    text = read_text(file) or ""
    read_toml(text, file)  # the reader's errors first, as it says them
    try:
        return tomlkit.parse(text)
    except Exception as exc:  # noqa: BLE001 - the reader said nothing, so this is tomlkit's own limit
        raise DualgitError(f"{file}: {exc}") from None


def _table(doc: Container, parts: list[str], make: bool) -> Container | None:
    """The container that holds the last part of a dotted key; made (as a [table]) with `make`."""
    here: Container = doc
    for i, part in enumerate(parts[:-1]):
        found = here.get(part)
        if found is None:
            if not make:
                return None
            here.append(part, tomlkit.table())
            found = here[part]
        if not isinstance(found, (Table, dict)):
            raise DualgitError(f"`{'.'.join(parts[:i + 1])}` is a value, not a table",
                               hint=f"`git dual config unset {'.'.join(parts[:i + 1])}` first")
        here = found.value if isinstance(found, Table) else found  # type: ignore[assignment]
    return here


def get(file: str, key: str) -> Any:
    """The key's value as plain data; an error when it is not set."""
    parts = _split(key)
    table = _table(_read(file), parts, make=False)
    if table is None or parts[-1] not in table:
        raise DualgitError(f"{key} is not set in {file}", hint=f'`git dual config set {key} VALUE` sets it')
    item = table[parts[-1]]
    return item.unwrap() if hasattr(item, "unwrap") else item


def _place(table: Container, name: str, value: Any) -> None:
    """A new key: where the file has it as a comment (`# name = ...`), else after the table's last
    key (before the comments that lead to the next table), else first."""
    item = tomlkit.item(value)
    body = table.body
    commented = re.compile(rf"#\s*{re.escape(name)}\s*=")
    for i, (k, existing) in enumerate(body):
        if k is None and isinstance(existing, Comment) and commented.match(existing.as_string().strip()):
            existing.trivia.indent = existing.trivia.comment_ws = existing.trivia.comment = existing.trivia.trail = ""
            table._insert_at(i, name, item)
            return
    last = max((i for i, (k, v) in enumerate(body) if k is not None and not isinstance(v, (Table, AoT))), default=-1)
    if last >= 0 or not any(isinstance(v, (Table, AoT)) for _, v in body):
        if last + 1 >= len(body):
            table.append(name, item)
        else:
            table._insert_at(last + 1, name, item)
        return
    table._insert_at(0, name, item)


def change(file: str, action: str, key: str, raw: str | None, plugin_keys: dict[str, Any]) -> tuple[Any, bool]:
    """Apply `action` to `key` in `file`: (the key's value now, or None when unset; whether the file
    changed). The file is written only when what it would become reads without an error."""
    if action not in ACTIONS[1:]:
        raise DualgitError(f"no action {action!r}", hint=f"one of {', '.join(ACTIONS)}")
    parts = _split(key)
    doc = _read(file)
    before = doc.as_string()
    value = value_of(raw) if raw is not None else None
    if action in ("set", "add", "remove") and raw is None:
        raise DualgitError(f"`git dual config {action} {key}` needs a value",
                           hint=f'`git dual config {action} {key} VALUE` (TOML, or a plain string)')
    table = _table(doc, parts, make=action in ("set", "add"))
    name = parts[-1]
    if action == "set":
        assert table is not None
        if name in table:
            table[name] = value
        else:
            _place(table, name, value)
    elif action == "unset":
        if table is not None and name in table:
            del table[name]
    else:
        assert table is not None or action == "remove"
        current = table.get(name) if table is not None else None
        if current is None and action == "add":
            _place(table, name, [value])  # type: ignore[arg-type]
        elif not isinstance(current, Array):
            raise DualgitError(f"`{key}` is not a list" if current is not None else f"{key} is not set in {file}",
                               hint=f"`{action}` is for list keys: `git dual config set {key} VALUE` for others")
        else:
            held = current.unwrap()
            if action == "add" and value not in held:
                current.append(value)
            elif action == "remove":
                if value not in held:
                    raise DualgitError(f"{value!r} is not in `{key}` ({held!r})",
                                       hint=f"`git dual config get {key}` shows what it holds")
                del current[held.index(value)]
    text = doc.as_string()
    if text == before:
        return (_now(table, name)), False
    if file == user_config_file():
        parse_user(text, file)
    else:
        parse(text, file, plugin_keys)
    os.makedirs(os.path.dirname(file) or ".", exist_ok=True)
    atomic_write(file, text.encode("utf-8"))
    return _now(table, name), True


def _now(table: Container | None, name: str) -> Any:
    if table is None or name not in table:
        return None
    item: Item = table[name]
    return item.unwrap() if hasattr(item, "unwrap") else item
