"""Built-in plugin 'metrics' (being written)."""
from kitpose import hookimpl


@hookimpl
def kitpose_register(registry):
    pass
