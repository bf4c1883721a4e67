"""An example kitpose plugin package: a median-of-mass decoder, an error-percentile metric
and a CSV monitor (registered by :mod:`kitpose_example.plugin`)."""
