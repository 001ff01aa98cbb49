"""Time the testbed world (the known-answers issue's budget: <= 2 min on a 2-core CPU) and show what makes it fair.

    python bench/bench_world.py [params/testbed.yaml] [-p key=value ...]

Prints the timings (generation, pretraining with checkpoints, query fine-tuning, evaluation), the thread setting and
load, the corpus size, each benchmark's planted token share and planted bins' size ranks, and the base / query
accuracy at every saved checkpoint (* marks the attributed one).
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from provenance_lib import params  # noqa: E402
from provenance_lib.artifacts import read_json  # noqa: E402
from provenance_lib.worlds import build_world, testbed  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("params", nargs="?", type=Path, default=ROOT / "params" / "testbed.yaml")
    parser.add_argument("-p", "--param", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    study = params.load(args.params, args.overrides)
    with tempfile.TemporaryDirectory() as out:
        start, cpu = time.perf_counter(), time.process_time()
        info = build_world(study, out)
        total, total_cpu = time.perf_counter() - start, time.process_time() - cpu
        truth = read_json(Path(out) / testbed.GROUND_TRUTH)
    x = info.extra
    print(
        f"testbed world ({args.params.name} {' '.join(args.overrides)}), seed {study.seed}, "
        f"torch threads {x['threads']}, cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"  corpus: {x['documents']} documents, {x['tokens']} tokens, {x['nonempty_bins']} non-empty bins; "
        f"model {x['model_parameters']} parameters, vocabulary {x['vocab_size']}"
    )
    print(
        f"  generation {x['generate_s']:.1f} s + pretraining {x['pretrain_s']:.1f} s ({x['pretrain_steps']} steps, "
        f"{x['pretrain_tokens_per_s']} tokens/s) + query fine-tuning {x['finetune_s']:.1f} s + evaluation "
        f"{x['evaluate_s']:.1f} s; build total {total:.1f} s wall, {total_cpu:.1f} s CPU of this process"
    )
    print(f"  {'benchmark':<22}{'planted share':>14}{'carriers':>10}  planted bins' size ranks")
    for name, b in truth["benchmarks"].items():
        print(f"  {name:<22}{b['planted_token_share']:>14.4f}{len(b['documents']):>10}  {b['bin_size_ranks']}")
    names = list(x["accuracy"]["chance"])
    print(f"  {'checkpoint':<13}" + "".join(f"{n[:12]:>26}" for n in names) + "   (base / query accuracy)")
    print(f"  {'chance':<13}" + "".join(f"{x['accuracy']['chance'][n]:>26.3f}" for n in names))
    for label, entry in x["checkpoint_models"].items():
        acc = entry["accuracy"]
        mark = "*" if label == x["attributed"] else " "
        print(f" {mark}{label:<13}" + "".join(f"{acc['base'][n]:>19.3f} / {acc['query'][n]:.3f}" for n in names))


if __name__ == "__main__":
    main()
