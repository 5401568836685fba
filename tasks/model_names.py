"""One way to name a model version everywhere on the command line: a registry URI (models:/colorizer/3,
models:/colorizer@champion), with colorizer/3 and colorizer@champion as short forms, or a model
package folder. Light on purpose: arguments are checked before MLflow is imported."""

from __future__ import annotations

import os
import re

from tasks.checks import ArgumentError

_NAME = r"[A-Za-z0-9][\w.-]*"
_SHORT = re.compile(rf"^(?:models:/)?(?P<name>{_NAME})(?:/(?P<version>\d+)|@(?P<alias>{_NAME}))$")
FORMS = "models:/colorizer/3, colorizer/3, models:/colorizer@champion, colorizer@champion or a model package folder"


def model_uri(text: str, what: str = "--model") -> str:
    """The registry URI of `text` (short forms completed); a package folder as it is."""
    if os.path.isdir(text):
        return text
    m = _SHORT.match(text)
    if not m:
        raise ArgumentError(f"{what} {text!r}: name a model version as {FORMS}")
    return f"models:/{text.removeprefix('models:/')}"


def name_and_version(text: str, what: str) -> tuple[str, str | None, str | None]:
    """(name, version, alias) of a model version named in any of the accepted forms."""
    m = _SHORT.match(model_uri(text, what))
    if not m:  # a package folder
        raise ArgumentError(f"{what} {text!r}: a registered version is needed here ({FORMS.rsplit(' or ', 1)[0]})")
    return m["name"], m["version"], m["alias"]


def registered_version(text: str, what: str) -> tuple[str, str]:
    """(name, version number) of a registered version; an alias is looked up in the registry."""
    name, version, alias = name_and_version(text, what)
    if version:
        return name, version
    from tasks.registry import resolve_version

    try:
        return resolve_version(f"models:/{name}@{alias}")
    except Exception:  # noqa: BLE001 - MLflow raises its own for an unknown name or alias
        raise ArgumentError(f"{what} {text!r}: no version of {name} has the alias {alias}") from None


def output_folder(text: str, what: str) -> str:
    """The folder under a destination that holds a version's outputs: colorizer/3 -> colorizer-v3. A
    folder name (colorizer-v3, or colorizer-v3-s<settings> for other settings) is taken as it is."""
    if "/" not in text and "@" not in text:
        return text
    from tasks.layout import version_folder

    return version_folder(*registered_version(text, what))
