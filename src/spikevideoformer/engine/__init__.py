"""engine package of spikevideoformer."""
