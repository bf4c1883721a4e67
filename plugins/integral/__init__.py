"""Built-in plugin 'integral': integral regression (soft-argmax) decoding, 2D and 3D.

Registers ``soft_argmax``. The implementation is imported on first build.
"""
from kitpose import hookimpl


@hookimpl
def kitpose_register(registry):
    registry.decoder("soft_argmax", "kitpose_plugins.integral.soft_argmax:SoftArgmax")
