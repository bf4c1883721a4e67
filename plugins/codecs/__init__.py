"""Built-in plugin 'encoders': keypoints -> target heatmaps.

Registers ``gaussian``, ``one_hot``, ``disk``, ``gaussian3d`` and ``one_hot3d``. The
implementations live in ``_codec_*`` modules and are imported on first build, so listing
components never imports torch.
"""
from kitpose import hookimpl


@hookimpl
def kitpose_register(registry):
    registry.encoder("gaussian", "kitpose_plugins._codec_gaussian:GaussianEncoder")
    registry.encoder("one_hot", "kitpose_plugins._codec_gaussian:OneHotEncoder")
    registry.encoder("disk", "kitpose_plugins._codec_gaussian:DiskEncoder")
    registry.encoder("gaussian3d", "kitpose_plugins._codec_volume:Gaussian3DEncoder")
    registry.encoder("one_hot3d", "kitpose_plugins._codec_volume:OneHot3DEncoder")
