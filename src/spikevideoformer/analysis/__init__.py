"""analysis package of spikevideoformer."""
