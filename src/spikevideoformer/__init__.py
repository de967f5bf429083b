"""spikevideoformer: SpikeVideoFormer (Zou et al., ICML 2025) as an installable library."""
__version__ = "0.1.0"
