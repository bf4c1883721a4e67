"""Built-in plugin 'monitors': console progress and a JSON-lines log in the run directory.

Registers the ``console`` and ``jsonl`` monitors. The ``figures`` and ``visdom`` monitors
live in the subpackages of the same names, each a plugin of its own.
"""
from kitpose import hookimpl


@hookimpl
def kitpose_register(registry):
    registry.monitor("console", "kitpose_plugins.monitors.console:ConsoleMonitor")
    registry.monitor("jsonl", "kitpose_plugins.monitors.jsonl:JsonlMonitor")
