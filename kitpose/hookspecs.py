"""Hook specifications: the whole contract between kitpose and its plugins.

A plugin is a module (or object) with functions marked by :data:`kitpose.hookimpl`
whose names are hooks below. Built-in plugins and third-party packages are found
the same way, through the ``kitpose`` entry-point group::

    # pyproject.toml of a plugin package
    [project.entry-points.kitpose]
    mydecoders = "my_package.kitpose_plugin"

Hooks are always called with keyword arguments; an implementation may accept any
subset of a hook's arguments, in any order (pluggy matches them by name).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    import argparse
    from pathlib import Path

    from omegaconf import DictConfig

    from kitpose.registry import Registry

hookspec = pluggy.HookspecMarker("kitpose")


@hookspec
def kitpose_register(registry: "Registry") -> None:
    """Register components by name.

    Called once per plugin when the plugin manager loads. Register lazily, with a
    ``"module:attribute"`` string, so that listing components stays fast::

        @kitpose.hookimpl
        def kitpose_register(registry):
            registry.decoder("median", "my_package.median:MedianDecoder")

    :param registry: the :class:`kitpose.registry.Registry`; it has one method per
        component kind (``dataset``, ``transform``, ``backbone``, ``head``, ``encoder``,
        ``decoder``, ``loss``, ``metric``, ``augmentation``, ``monitor``, ``optimizer``,
        ``scheduler``, ``format``)
        taking ``(name, target, *, summary=None)``.

    A name already registered for the same kind by another plugin is an error that
    names both providers; the clashing plugin is reported as broken and none of its
    registrations are kept.
    """


@hookspec
def kitpose_recipe_dirs() -> "list[Path | str]":
    """Return folders in which ``extends:`` looks up base recipes.

    A recipe's own folder is searched first, then these folders in plugin order.
    This is how a package ships recipes that users extend by a relative name,
    such as ``extends: [base/synthetic.yaml]``.
    """


@hookspec
def kitpose_migrate_recipe(config: "DictConfig", file: str) -> None:
    """Rewrite, in place, settings an older kitpose wrote that this plugin now owns.

    Called on every recipe file as it is read (base recipes and a run directory's
    ``recipe.yaml`` too), before anything is checked. Leave alone what you do not know;
    raise :class:`kitpose.errors.RecipeError` (with ``file``) for an old setting that
    cannot be moved by itself, with a hint saying how to write it now.
    """


@hookspec
def kitpose_add_commands(subparsers: "argparse._SubParsersAction") -> None:
    """Add sub-commands to the ``kitpose`` command line.

    Create a parser with ``subparsers.add_parser(NAME, help=...)`` and set its
    handler with ``parser.set_defaults(handler=FUNCTION)``. The handler receives the
    parsed :class:`argparse.Namespace` and returns an exit code (``0`` or ``None``
    for success). Raise :class:`kitpose.errors.KitposeError` for user mistakes: the
    command line prints it as one line and exits with code 2.
    """

