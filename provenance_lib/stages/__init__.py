"""The study's stages, one module or package each, in pipeline order; each reads only what earlier stages wrote.

01 ``sampling`` -> 02 gradients -> 03 binning -> 04 contrast -> 05 unlearning.
"""
