"""Built-in plugin 'hrnet': the HRNet backbone (W32, W48 and a CPU-sized variant)."""
from kitpose import hookimpl


@hookimpl
def kitpose_register(registry):
    """Register ``backbone: hrnet``."""
    registry.backbone("hrnet", "kitpose_plugins._model_hrnet:HRNet")
