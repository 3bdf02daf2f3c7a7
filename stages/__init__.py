"""Breast cancer screening inference (NYU models, Wu et al. 2019) as Pachyderm stages."""

__version__ = "0.1.0"
