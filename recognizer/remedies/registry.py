"""The remedy registry: names -> builders. Builders register when :mod:`recognizer.remedies` is
imported (its ``__init__`` imports every module that registers), so there is nothing to remember
to import."""

from __future__ import annotations

from collections.abc import Callable

from recognizer.remedies.base import Remedy

RemedyBuilder = Callable[..., Remedy]

_REMEDIES: dict[str, RemedyBuilder] = {}


class UnknownRemedyError(KeyError):
    """A remedy name that is not registered; the message lists the known ones."""

    def __str__(self) -> str:
        return str(self.args[0])


def list_remedies() -> list[str]:
    """The registered remedy names, sorted."""
    return sorted(_REMEDIES)


def register_remedy(name: str, builder: RemedyBuilder) -> None:
    """Add a remedy (``builder(**kw) -> Remedy``) under ``name``.

    Raises:
        ValueError: ``name`` is already registered.
    """
    if name in _REMEDIES:
        raise ValueError(f"remedy {name!r} is already registered")
    _REMEDIES[name] = builder


def create_remedy(name: str, **kwargs: object) -> Remedy:
    """Build a remedy by name, e.g. ``create_remedy("cb", beta=0.9999)``.

    Raises:
        UnknownRemedyError: unknown ``name`` (the message lists the known ones).
        TypeError: a keyword the remedy does not take (the message names the remedy).
    """
    if name not in _REMEDIES:
        raise UnknownRemedyError(
            f"unknown remedy {name!r}; known remedies: {', '.join(list_remedies())}"
        )
    try:
        return _REMEDIES[name](**kwargs)
    except TypeError as err:
        raise TypeError(f"remedy {name!r}: {err}") from err
