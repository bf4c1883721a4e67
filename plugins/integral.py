"""Built-in plugin 'integral' (being written)."""
from kitpose import hookimpl


@hookimpl
def kitpose_register(registry):
    pass
