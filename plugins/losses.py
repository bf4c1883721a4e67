"""Built-in plugin 'losses' (being written)."""
from kitpose import hookimpl


@hookimpl
def kitpose_register(registry):
    pass
