"""Built-in plugin 'simcc': SimCC coordinate classification (Li et al., 2022), as mmpose 1.x.

Registers the encoder ``simcc`` (a Gaussian or one-hot label vector per axis and joint),
the decoder ``simcc_peak`` (arg-max of each vector, optionally mmpose's 1-D DARK), the head
``simcc_head`` (a map per joint, flattened, two linear layers to the vectors) and the loss
``simcc_kl`` (KL divergence of the labels from the softmax of the logits). The
implementations (and torch) load when a component is first built.
"""
from kitpose import hookimpl


@hookimpl
def kitpose_register(registry):
    registry.encoder("simcc", "kitpose_plugins.simcc.codec:SimCCEncoder")
    registry.decoder("simcc_peak", "kitpose_plugins.simcc.codec:SimCCDecoder")
    registry.head("simcc_head", "kitpose_plugins.simcc.head:SimCCHead")
    registry.loss("simcc_kl", "kitpose_plugins.simcc.loss:SimCCKL")
