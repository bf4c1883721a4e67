"""One exception type per kind of user mistake.

Every error a user can cause derives from :class:`KitposeError`. It carries the
place the mistake was made (a recipe file and a dotted path inside it, such as
``flows.train[2].in.target``) and a hint saying what to do. The CLI prints
``str(error)`` as one line and exits with code 2; ``--debug`` shows the traceback.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class KitposeError(Exception):
    """Base class of every error caused by user input (recipes, plugins, files)."""

    #: what ``kitpose`` exits with: 2 for a mistake in the input, 1 for a fault of the machine
    exit_code = 2

    def __init__(self, message: str, *, file: str | None = None, path: str | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.path = path
        self.hint = hint

    def where(self) -> str:
        parts = [p for p in (self.file, self.path) if p]
        return ": ".join(parts)

    def __str__(self) -> str:
        where = self.where()
        text = f"{where}: {self.message}" if where else self.message
        if self.hint:
            text = f"{text}; {self.hint}"
        return " ".join(text.split("\n"))


class RecipeError(KitposeError):
    """A recipe file cannot be read, merged, overridden or validated."""


class OverrideError(RecipeError):
    """A ``key=value`` override from the command line is malformed or names no key."""


class FlowError(RecipeError):
    """A flow is not a valid graph: unknown input, cycle, unknown argument."""


class ComponentError(KitposeError):
    """A component name is unknown or its parameters do not fit its factory."""


class UnknownComponentError(ComponentError):
    """No component of that kind has that name."""


class ParameterError(ComponentError):
    """Parameters do not match the component factory's signature."""


class PluginError(KitposeError):
    """A plugin failed to load, registered a clashing name or broke a contract."""


class RunError(KitposeError):
    """A run cannot start or continue (unwritable run directory, bad checkpoint, NaN loss)."""


class RunFault(RunError):
    """The machine failed the run (disk full, read-only run directory, a lost rank)."""

    exit_code = 1


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped the run where it could be resumed exactly; the message says how."""


def first_line(error: BaseException, limit: int = 300) -> str:
    """The first non-empty line of an exception's message (at most ``limit`` characters), or
    its type's name: what a one-line error quotes of a library's multi-line message."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0][:limit] if lines else type(error).__name__


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """The closest choice to ``word``, or ``None`` when nothing is close."""
    matches = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.5)
    return matches[0] if matches else None


def suggestion(word: str, choices: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` or an empty string."""
    best = did_you_mean(word, choices)
    return f" (did you mean '{best}'?)" if best else ""
