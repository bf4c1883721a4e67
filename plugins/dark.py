"""Built-in plugin 'dark' (being written)."""
from kitpose import hookimpl


@hookimpl
def kitpose_register(registry):
    pass
