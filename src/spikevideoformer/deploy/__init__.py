"""deploy package of spikevideoformer."""
