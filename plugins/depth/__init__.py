"""Built-in plugin 'depth': keypoints as image position plus root-relative depth (for 3D)."""
from kitpose import hookimpl


@hookimpl
def kitpose_register(registry):
    registry.transform("uvz", "kitpose_plugins.depth.targets:ImageDepthTargets")
