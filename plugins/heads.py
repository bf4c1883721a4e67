"""Built-in plugin 'heads': 2D heatmap, 3D volumetric and direct-regression heads."""
from kitpose import hookimpl


@hookimpl
def kitpose_register(registry):
    """Register ``head: heatmap``, ``head: volumetric`` and ``head: regression``."""
    registry.head("heatmap", "kitpose_plugins._model_heads:HeatmapHead")
    registry.head("volumetric", "kitpose_plugins._model_heads:VolumetricHead")
    registry.head("regression", "kitpose_plugins._model_heads:RegressionHead")
