"""A resolved model as the workers receive it: plain data, so that a worker needs neither MLflow nor
Prefect to load what the client resolved (tasks.registry.resolve_model makes these)."""

from __future__ import annotations

from dataclasses import dataclass

from tasks.layout import version_folder


@dataclass(frozen=True)
class ModelRef:
    """A model resolved on the client: a verified local copy of its package, its registry name and
    version, and its identity (the checksum of the package's files)."""

    uri: str
    directory: str
    name: str
    version: str
    sha256: str

    @property
    def prefix(self) -> str:
        return version_folder(self.name, self.version)

    @property
    def exact_uri(self) -> str:
        """This very version, whatever an alias points at later (a package folder stays itself)."""
        return f"models:/{self.name}/{self.version}" if self.uri.startswith("models:/") else self.directory
