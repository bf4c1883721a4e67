"""Built-in plugin 'dark': distribution-aware sub-pixel decoders.

Registers ``dark`` (DARK's blur + log + Newton step, with a maximum check and a 1-cell cap),
``dark_udp`` (mmpose's DARK for UDP maps: clip, log, an unguarded 3x3 Newton step; ``udp``)
and ``gaussfit`` (weighted least-squares Gaussian fit: exact on clean maps, refines up to
the border, no blur kernel to tune). The implementations are imported on first build.
"""
from kitpose import hookimpl


@hookimpl
def kitpose_register(registry):
    registry.decoder("dark", "kitpose_plugins.dark.decoder:DarkDecoder")
    registry.decoder("dark_udp", "kitpose_plugins.dark.udp:DarkUdpDecoder")
    registry.decoder("gaussfit", "kitpose_plugins.dark.gaussfit:GaussFitDecoder")
