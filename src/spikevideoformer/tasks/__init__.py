"""tasks package of spikevideoformer."""
