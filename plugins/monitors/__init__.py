"""Built-in monitors: console progress and a JSON-lines log in the run directory."""
from kitpose import hookimpl


@hookimpl
def kitpose_register(registry):
    registry.monitor("console", "kitpose_plugins._monitors:ConsoleMonitor")
    registry.monitor("jsonl", "kitpose_plugins._monitors:JsonlMonitor")
