"""models package of spikevideoformer."""
