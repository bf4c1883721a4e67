"""Built-in plugin 'coco' (being written)."""
from kitpose import hookimpl


@hookimpl
def kitpose_register(registry):
    pass
