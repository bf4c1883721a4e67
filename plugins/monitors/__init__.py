"""Built-in plugin 'monitors': console progress, a JSON-lines log and TensorBoard event files.

Registers the ``console``, ``jsonl`` and ``tensorboard`` monitors. The ``figures`` and ``visdom`` monitors
live in the subpackages of the same names, each a plugin of its own.
"""
from kitpose import hookimpl


@hookimpl
def kitpose_register(registry):
    registry.monitor("console", "kitpose_plugins.monitors.console:ConsoleMonitor")
    registry.monitor("jsonl", "kitpose_plugins.monitors.jsonl:JsonlMonitor")
    registry.monitor("tensorboard", "kitpose_plugins.monitors.tensorboard:TensorBoardMonitor")
