"""Built-in plugin 'heads' (being written)."""
from kitpose import hookimpl


@hookimpl
def kitpose_register(registry):
    pass
