"""Built-in plugin 'integral': integral regression (soft-argmax) decoding, 2D and 3D, and DSNT's losses.

Registers the decoder ``soft_argmax`` (its ``debias`` option removes the pull towards the
map centre, Gu et al. 2021; with ``beta: 1`` it is DSNT's ``dsnt(flat_softmax(h))``, in
cells) and the losses ``dsnt_reg`` (DSNT's Jensen-Shannon / KL regulariser towards a target
Gaussian) and ``joint_euclidean`` (DSNT's Euclidean coordinate loss, in cells or normalised
units). The implementations are imported on first build.
"""
from kitpose import hookimpl


@hookimpl
def kitpose_register(registry):
    registry.decoder("soft_argmax", "kitpose_plugins.integral.soft_argmax:SoftArgmax")
    registry.loss("dsnt_reg", "kitpose_plugins.integral.dsnt:DsntRegulariser")
    registry.loss("joint_euclidean", "kitpose_plugins.integral.dsnt:JointEuclidean")
