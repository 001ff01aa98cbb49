"""Time the testbed world: generation + training (the issue's budget: <= 90 s on a 2-core CPU), then evaluation.

    python bench/bench_world.py [params/testbed.yaml] [-p key=value ...]

Prints the timings, the thread setting, the corpus size and the accuracies the build measured through lm-eval.
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from provenance_lib import params  # noqa: E402
from provenance_lib.worlds import build_world  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("params", nargs="?", type=Path, default=ROOT / "params" / "testbed.yaml")
    parser.add_argument("-p", "--param", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    study = params.load(args.params, args.overrides)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        info = build_world(study, out)
        total = time.perf_counter() - start
    x = info.extra
    print(f"testbed world ({args.params.name} {' '.join(args.overrides)}), seed {study.seed}, "
          f"torch threads {x['threads']}, cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    print(f"  corpus: {x['documents']} documents, {x['tokens']} tokens, {x['nonempty_bins']} non-empty bins; "
          f"model {x['model_parameters']} parameters, vocabulary {x['vocab_size']}")
    print(f"  generation {x['generate_s']:.1f} s + training {x['train_s']:.1f} s "
          f"(pretraining {x['pretrain_s']:.1f} s, {x['pretrain_steps']} steps, {x['pretrain_tokens_per_s']} tokens/s)"
          f" = {x['generate_s'] + x['train_s']:.1f} s; evaluation {x['evaluate_s']:.1f} s; build total {total:.1f} s")
    accuracy = x["accuracy"]
    print(f"  {'benchmark':<22}{'chance':>8}{'base':>8}{'query':>8}")
    for name, chance in accuracy["chance"].items():
        print(f"  {name:<22}{chance:>8.3f}{accuracy['base'][name]:>8.3f}{accuracy['query'][name]:>8.3f}")


if __name__ == "__main__":
    main()
