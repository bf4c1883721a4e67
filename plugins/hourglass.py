"""Built-in plugin 'hourglass': the Stacked Hourglass network."""
from kitpose import hookimpl


@hookimpl
def kitpose_register(registry):
    """Register ``backbone: hourglass``."""
    registry.backbone("hourglass", "kitpose_plugins._model_hourglass:StackedHourglass")
