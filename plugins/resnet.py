"""Built-in plugin 'resnet' (being written)."""
from kitpose import hookimpl


@hookimpl
def kitpose_register(registry):
    pass
