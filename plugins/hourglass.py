"""Built-in plugin 'hourglass' (being written)."""
from kitpose import hookimpl


@hookimpl
def kitpose_register(registry):
    pass
