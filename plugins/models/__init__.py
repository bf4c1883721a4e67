"""Built-in plugin 'models': backbones and heads.

Registers the backbones ``hrnet`` (W32, W48 and a CPU-sized variant), ``hourglass`` (the
Stacked Hourglass network), ``resnet`` and ``resnet_multistage`` (the Integral paper's
multi-stage ResNet), and the heads ``heatmap`` (2D), ``volumetric`` (3D) and ``regression``
(direct regression). Shared layers are in ``blocks`` and ``common``, pretrained-weight
loading in ``pretrained``. The implementations (and torch) load when a model is first built.
"""
from kitpose import hookimpl


@hookimpl
def kitpose_register(registry):
    registry.backbone("hrnet", "kitpose_plugins.models.hrnet:HRNet")
    registry.backbone("hourglass", "kitpose_plugins.models.hourglass:StackedHourglass")
    registry.backbone("resnet", "kitpose_plugins.models.resnet:ResNet")
    registry.backbone("resnet_multistage", "kitpose_plugins.models.resnet:ResNetMultiStage")

    registry.head("heatmap", "kitpose_plugins.models.heads:HeatmapHead")
    registry.head("volumetric", "kitpose_plugins.models.heads:VolumetricHead")
    registry.head("regression", "kitpose_plugins.models.heads:RegressionHead")
