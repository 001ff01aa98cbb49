"""Capability provenance: where do a language model's benchmark capabilities come from in its pretraining data?

The package reads bottom-up in pipeline order; each layer imports only the layers above it in this list:

* ground: ``errors``, ``artifacts``, ``assets``, ``threads``, ``taxonomy``, ``params``, ``corpus``, ``benchmarks``,
  ``stats``, ``codebase`` (the code a record fingerprints), ``models``, ``labels``, ``evaluation``;
* ``worlds``: the contract and the three worlds (testbed, real-mini, paper);
* ``record`` (run.json) and ``context`` (what a stage notebook works with);
* ``stages``: 01 sampling -> 02 gradients -> 03 binning -> 04 contrast -> 05 unlearning, one notebook each;
* ``execute`` (one notebook through papermill), ``plans`` (what the runner checks before and after a stage),
  ``runs`` (the runner), ``verify``, and ``__main__`` (the command line).
"""

__version__ = "0.1.0"
