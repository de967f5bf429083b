"""layers package of spikevideoformer."""
