"""Built-in plugin 'decoders': heatmaps -> keypoints by argmax, standard shift, centre of mass.

Registers ``argmax``, ``standard`` and ``com``. The implementations are imported on first
build.
"""
from kitpose import hookimpl


@hookimpl
def kitpose_register(registry):
    registry.decoder("argmax", "kitpose_plugins._codec_peak:ArgmaxDecoder")
    registry.decoder("standard", "kitpose_plugins._codec_peak:StandardDecoder")
    registry.decoder("com", "kitpose_plugins._codec_com:CentreOfMassDecoder")
