"""Built-in plugin 'encoders' (being written)."""
from kitpose import hookimpl


@hookimpl
def kitpose_register(registry):
    pass
