"""data package of spikevideoformer."""
