"""The command-line reference, written from the command line itself (the docs site's CLI page and
the docs test read it): every verb with its arguments, options, help and defaults."""

from __future__ import annotations

from typing import Iterator

import typer


def commands() -> dict[str, object]:
    """ "verb" or "group verb" -> its click command, in the order `colorize --help` lists them."""
    from cli import app

    def walk(cmd, path: list[str]) -> Iterator[tuple[str, object]]:
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                yield from walk(sub, [*path, name])
        else:
            yield " ".join(path), cmd

    return dict(walk(typer.main.get_command(app), []))


def option_names(cmd) -> set[str]:
    return {n for p in cmd.params for n in (*p.opts, *p.secondary_opts) if n.startswith("-")}


def _default(p) -> str:
    if p.required and p.param_type_name == "option":
        return "required"
    if isinstance(p.show_default, str):
        return p.show_default
    if p.default is None or p.default == [] or getattr(p, "is_flag", False) and p.default is False and not p.secondary_opts:
        return ""
    if getattr(p, "is_flag", False) and p.secondary_opts:
        return p.opts[0] if p.default else p.secondary_opts[0]
    return str(p.default)


def markdown() -> str:
    lines = []
    for verb, cmd in commands().items():
        args = " ".join(p.name.upper() if p.required else f"[{p.name.upper()}]" for p in cmd.params if p.param_type_name == "argument")
        lines += [f"## colorize {verb}", "", f"    colorize {verb} {args} [OPTIONS]".rstrip(), "", (cmd.help or "").strip(), ""]
        if cmd.epilog:
            lines += [cmd.epilog, ""]
        rows = [(" / ".join(p.opts + p.secondary_opts) if p.param_type_name == "option" else p.name.upper(), p.help or "", _default(p))
                for p in cmd.params]  # fmt: skip
        lines += ["| argument or option | what | default |", "| --- | --- | --- |"]
        lines += [f"| `{name}` | {what.replace('|', '&#124;')} | {f'`{d}`' if d else ''} |" for name, what, d in rows]
        lines.append("")
    return "\n".join(lines)
