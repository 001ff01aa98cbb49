"""Shared test fixtures. Tests never touch the network; HF_HUB_OFFLINE is forced on."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("OMP_NUM_THREADS", "1")
