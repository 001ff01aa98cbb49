"""Capability provenance: where do a language model's benchmark capabilities come from in its pretraining data?

Stages (one module and one notebook each): 01 sampling -> 02 gradients -> 03 binning -> 04 contrast -> 05 unlearning.
Shared pieces: params, taxonomy, artifacts, runs (run records and the papermill runner), world, corpus, benchmarks.
"""

__version__ = "0.1.0"
