"""Built-in plugin 'codecs': keypoints -> target heatmaps, and heatmaps -> keypoints.

Registers the encoders ``gaussian``, ``udp`` (mmpose's UDP targets), ``udp_combined`` (UDP's
class disk and offset maps), ``megvii`` (blurred one-hot, peak 255), ``one_hot``, ``disk``,
``gaussian3d`` and ``one_hot3d`` and the decoders ``argmax``, ``standard`` (quarter-offset
shift), ``com`` (centre of mass), ``udp_offsets`` (arg-max of the class disk plus the offsets
read there) and ``megvii_peak`` (blur, arg-max, quarter and half-cell shift).
The package also holds what every heatmap codec shares: the heatmap grid and its conventions
(``grid``), argument checks (``common``), the encoder base (``encode``), the peak search
(``peak``, ``patch``), the combined targets (``offsets``), OpenCV's blur for batches (``blur``) and the flip back-shift
(``flip``). It also registers the augmentation ``flip_test`` (``flip_test``), which
averages the heatmaps of an image and its mirror, and moves the flip-test settings of
older recipes (``migrate``). The implementations are imported on first build, so listing
components never imports torch.
"""
from kitpose import hookimpl


@hookimpl
def kitpose_register(registry):
    registry.encoder("gaussian", "kitpose_plugins.codecs.gaussian:GaussianEncoder")
    registry.encoder("one_hot", "kitpose_plugins.codecs.gaussian:OneHotEncoder")
    registry.encoder("disk", "kitpose_plugins.codecs.gaussian:DiskEncoder")
    registry.encoder("udp", "kitpose_plugins.codecs.gaussian:UdpEncoder")
    registry.encoder("udp_combined", "kitpose_plugins.codecs.offsets:UdpCombinedEncoder")
    registry.encoder("megvii", "kitpose_plugins.codecs.megvii:MegviiEncoder")
    registry.encoder("gaussian3d", "kitpose_plugins.codecs.volume:Gaussian3DEncoder")
    registry.encoder("one_hot3d", "kitpose_plugins.codecs.volume:OneHot3DEncoder")

    registry.decoder("argmax", "kitpose_plugins.codecs.peak:ArgmaxDecoder")
    registry.decoder("standard", "kitpose_plugins.codecs.peak:StandardDecoder")
    registry.decoder("com", "kitpose_plugins.codecs.com:CentreOfMassDecoder")
    registry.decoder("udp_offsets", "kitpose_plugins.codecs.offsets:UdpCombinedDecoder")
    registry.decoder("megvii_peak", "kitpose_plugins.codecs.megvii:MegviiDecoder")

    registry.augmentation("flip_test", "kitpose_plugins.codecs.flip_test:FlipTest")


@hookimpl
def kitpose_migrate_recipe(config, file):
    from kitpose_plugins.codecs.migrate import migrate_flip_settings

    migrate_flip_settings(config, file)
