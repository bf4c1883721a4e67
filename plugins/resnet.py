"""Built-in plugin 'resnet': ResNet backbones and the Integral paper's multi-stage ResNet."""
from kitpose import hookimpl


@hookimpl
def kitpose_register(registry):
    """Register ``backbone: resnet`` and ``backbone: resnet_multistage``."""
    registry.backbone("resnet", "kitpose_plugins._model_resnet:ResNet")
    registry.backbone("resnet_multistage", "kitpose_plugins._model_resnet:ResNetMultiStage")
