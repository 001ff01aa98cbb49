"""A dry run of a study's cost: ``python -m provenance_lib estimate params/paper.yaml``. Reads nothing from the hub.

For each stage: the work its params imply (documents, tokens, queries, unlearning runs x steps, evaluated items),
the cost per unit, and totals in GPU-hours (H200-class), CPU-hours and disk, beside the compute the paper reports
(``setting_figures.compute_h200_hours``); then the commands that launch each stage on a cluster.

The scaling rule (Kaplan et al. 2020's FLOP count, with the attention term): one token through a decoder with N
non-embedding-dominated parameters, L layers, width d and context T costs ``2 N + 2 L T d`` FLOPs forward; a
forward + backward three times that; a LoRA step (frozen weights: no weight gradients) twice the forward. GPU
seconds = FLOPs / (MFU x peak), with the MFU and peak stated in ``HARDWARE``. TrackStar's gradient collection costs
``collection_ratio`` plain forward + backward passes (bergson's per-module projection on top of the backward), and
stage 01 costs its CPU microseconds per document read: both are measured, never assumed — read from the JSON the
bench scripts print, kept in ``bench/results/`` (``gradients.json``: ``bench/bench_gradients.py``'s
``ratio_to_plain.stage``; ``sampling.json``: ``bench/bench_sampling.py``'s whole-stage CPU per document).

Work the params do not state (the size of the Dolma3 population, the paper's token counts) comes from
``reference/paper_reported.yaml`` (``setting_figures``, ``working_set``, ``benchmarks``); the working set scales
with ``sampling.target_per_bin`` over the paper's bins.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

from .artifacts import read_json
from .benchmarks import BENCHMARKS
from .errors import ProvenanceError
from .params import StudyParams
from .reported import paper_reported
from .stages.unlearning import work_dir as unlearning_work_dir
from .taxonomy import load as load_taxonomy

SOCIALIQA_EVAL_ITEMS = 1954  # lm-eval's social_iqa scores its validation split; the paper's 10,000 SocialIQA
# queries are its attribution queries, not what stage 05 evaluates
# The models, by their published configs (OLMo3-7B: 32 layers, width 4096; the WebOrganizer classifiers are
# gte-base-en-v1.5: 12 layers, width 768, 137M parameters, 8,192-token context).
MODELS = {
    "olmo3-7b": dict(params=7.3e9, layers=32, width=4096),
    "weborganizer-classifier": dict(params=1.37e8, layers=12, width=768),
}
HARDWARE = dict(  # H200 SXM dense tensor-core peaks (NVIDIA datasheet); MFUs are assumptions, stated
    peak_bf16=989e12,
    peak_tf32=494.7e12,
    mfu_gradients=0.4,  # fp32 storage + TF32 matmuls (bergson --use_tf32_matmuls), 8k-token windows
    mfu_train=0.35,  # LoRA steps in bf16 at 2k tokens
    mfu_inference=0.25,  # lm-eval log-likelihoods and classifier batches: short, padded sequences
)
DEFAULTS = dict(  # what a section that this checkout's params lack would say: the paper's configuration
    query_tokens=300,  # a bare question + answer (3-4 shot prompts for evaluation: 500 per choice)
    eval_tokens_per_choice=500,
    choices=3.8,
    gradients=dict(
        max_length=8192,
        checkpoints=["final"],
        curvature=dict(train_documents=10_000),
        v=dict(calibration_documents=2048),
    ),
    unlearning=dict(
        forget=dict(topics=None, seeds=3, constructions=["bin", "document"]),
        training=dict(batch_size=4, grad_accumulation=4, max_length=2048, max_steps=5000, stop_check_every=50),
    ),
    projection_dim=16,
    tracked_modules=32 * 7,
)
BYTES = dict(
    text_per_token=4 / 3,  # Dolma3 jsonl.zst: ~4 bytes of UTF-8 per token, zstd ~3x
    manifest_row=120,
    doc_score_row=20 * 8,
    bf16=2,
    fp32=4,
)


@dataclass
class StageCost:
    stage: str
    work: dict
    gpu_hours: float = 0.0
    cpu_hours: float = 0.0
    disk_gb: float = 0.0
    notes: list[str] = field(default_factory=list)
    launch: str = ""


def token_flops(model: str, context: float, passes: float) -> float:
    """FLOPs per token: ``passes`` forward-equivalents (1 forward, 2 LoRA step, 3 forward + backward) of
    ``2 N + 2 L T d``."""
    m = MODELS[model]
    return passes * (2 * m["params"] + 2 * m["layers"] * context * m["width"])


def gpu_hours(flops: float, peak: str, mfu: str) -> float:
    return flops / (HARDWARE[mfu] * HARDWARE[peak]) / 3600


def section(params: StudyParams, name: str) -> dict:
    """A params section as a dict, or the paper's configuration when this checkout's params have no such section."""
    value = getattr(params, name, None)
    return value.model_dump(mode="json") if value is not None else DEFAULTS[name]


# ----------------------------------------------------------------------------------------------- work
def working_set(params: StudyParams) -> dict:
    """Documents and tokens of the working set: the paper's full bins take ``target_per_bin`` each, its
    underfilled bins keep what they have (capped by the target); tokens at the paper's mean per document."""
    paper = paper_reported()["working_set"]
    target = params.sampling.target_per_bin if params.sampling else paper["target_docs_per_bin"]
    underfilled = paper["documents"] - paper["full_bins"] * paper["target_docs_per_bin"]
    if target >= paper["target_docs_per_bin"]:
        documents = paper["full_bins"] * target + underfilled
    else:  # below the paper's target, an underfilled bin (436 docs and more) fills up to the target or stays
        documents = paper["full_bins"] * target + min(underfilled, paper["underfilled_bins"] * target)
    tokens_per_doc = float(paper["tokens"]) / paper["documents"]
    return dict(documents=int(documents), tokens=documents * tokens_per_doc, tokens_per_doc=tokens_per_doc)


def population() -> dict:
    """The Dolma3 mix as stage 01 reads it: documents before and after de-duplication, tokens."""
    figures = paper_reported()["setting_figures"]
    unique, tokens = figures["corpus_unique_documents"], figures["corpus_tokens"]
    read = unique / (1 - figures["corpus_duplication_rate"])
    return dict(read=read, unique=unique, tokens=tokens, tokens_per_doc=tokens / read)


def paper_gpu_hours() -> float:
    """The compute the paper reports for its study, in H200-equivalent GPU-hours."""
    return float(paper_reported()["setting_figures"]["compute_h200_hours"])


def queries() -> int:
    return sum(b["queries"] for b in paper_reported()["benchmarks"].values())


# ----------------------------------------------------------------------------------------------- stages
def stage_sampling(params: StudyParams, costs: dict) -> StageCost:
    pop, ws = population(), working_set(params)
    context = min(pop["tokens_per_doc"], 8192)
    flops = pop["unique"] * context * token_flops("weborganizer-classifier", context, 1)
    return StageCost(
        "01_sampling",
        dict(documents_read=pop["read"], documents_classified=pop["unique"], working_set_documents=ws["documents"]),
        gpu_hours=gpu_hours(flops, "peak_bf16", "mfu_inference"),
        cpu_hours=pop["read"] * costs["sampling_cpu_us_per_document"] / 1e6 / 3600,
        disk_gb=(pop["tokens"] * BYTES["text_per_token"] + ws["documents"] * BYTES["manifest_row"]) / 1e9,
        notes=[
            "GPU: FormatClassifier on every unique document (Dolma3 carries topics only)",
            f"CPU: de-duplication and selection at the measured {costs['sampling_cpu_us_per_document']:g} CPU us "
            "per document read; tokenizing the unique documents (token counts, the classifier's input) not "
            "included",
            "disk: the downloaded Dolma3 shards dominate",
        ],
        launch=f"python -m provenance_lib run {{params}} --stages 01   # login node: datatrove submits "
        f"{params.sampling.executor.kind if params.sampling and params.sampling.executor else 'local'} jobs",
    )


def stage_gradients(params: StudyParams, costs: dict) -> StageCost:
    g, ws, q = section(params, "gradients"), working_set(params), queries()
    context = min(ws["tokens_per_doc"], g["max_length"])
    checkpoints = len(g.get("checkpoints") or ["final"])
    side_docs = g["curvature"]["train_documents"] + g["v"]["calibration_documents"]
    doc_flops = ws["tokens"] * token_flops("olmo3-7b", context, 3) * costs["collection_ratio"]
    side_flops = side_docs * ws["tokens_per_doc"] * token_flops("olmo3-7b", context, 3) * costs["collection_ratio"]
    query_flops = (
        q * costs["query_tokens"] * token_flops("olmo3-7b", costs["query_tokens"], 3) * costs["collection_ratio"]
    )
    eval_flops = (
        q
        * costs["choices"]
        * costs["eval_tokens_per_choice"]
        * token_flops("olmo3-7b", costs["eval_tokens_per_choice"], 1)
    )
    hours = checkpoints * gpu_hours(doc_flops + side_flops + query_flops, "peak_tf32", "mfu_gradients") + gpu_hours(
        eval_flops, "peak_bf16", "mfu_inference"
    )
    dim = DEFAULTS["tracked_modules"] * g.get("projection_dim", DEFAULTS["projection_dim"]) ** 2
    disk = (
        checkpoints * (q * dim * BYTES["fp32"] + ws["documents"] * BYTES["doc_score_row"])
        + 2 * MODELS["olmo3-7b"]["params"] * BYTES["fp32"]
    )
    return StageCost(
        "02_gradients",
        dict(
            documents=ws["documents"],
            tokens=ws["tokens"],
            queries=q,
            checkpoints=checkpoints,
            curvature_documents=side_docs,
        ),
        gpu_hours=hours,
        disk_gb=disk / 1e9,
        notes=[
            f"{costs['collection_ratio']} x a plain forward + backward per token, windows of {context:.0f} tokens",
            "the document side is > 95% of it: cost is linear in the working set's tokens",
            "disk: projected query gradients, per-document scores, both models in fp32",
        ],
        launch="python -m provenance_lib run {params} --stages 02   # a GPU node: bergson's launcher, "
        f"{g.get('workers', 8)} ranks x {g.get('nodes', 1)} node(s) (NODE_RANK, MASTER_ADDR across nodes)",
    )


def stage_unlearning(params: StudyParams, costs: dict) -> StageCost:
    u = section(params, "unlearning")
    f, t = u["forget"], u["training"]
    topics = f["auto_topics"] if f.get("topics") == "auto" else len(f["topics"]) if f.get("topics") else 24
    pairs = topics * f["seeds"]
    runs_per_construction = pairs * 4 * (3 if f["global_control"] else 2)  # targeted, random (+ global) per pair
    runs = runs_per_construction * len(f["constructions"])
    docs_per_step = 2 * t["batch_size"] * t["grad_accumulation"]  # forget + retain
    step_tokens = docs_per_step * t["max_length"]
    train_flops = runs * t["max_steps"] * step_tokens * token_flops("olmo3-7b", t["max_length"], 2)
    items = queries() - paper_reported()["benchmarks"]["SocialIQA"]["queries"] + SOCIALIQA_EVAL_ITEMS
    eval_tokens = items * costs["choices"] * costs["eval_tokens_per_choice"]
    eval_flops = (runs + 1) * eval_tokens * token_flops("olmo3-7b", costs["eval_tokens_per_choice"], 1)
    adapter = MODELS["olmo3-7b"]["layers"] * 4 * 8 * 2 * MODELS["olmo3-7b"]["width"] * BYTES["fp32"]  # r=8, q/k/v/o
    return StageCost(
        "05_unlearning",
        dict(
            runs=runs,
            pairs_per_benchmark=pairs,
            steps_per_run=t["max_steps"],
            tokens_per_step=step_tokens,
            evaluated_items_per_run=items,
        ),
        gpu_hours=gpu_hours(train_flops, "peak_bf16", "mfu_train")
        + gpu_hours(eval_flops, "peak_bf16", "mfu_inference"),
        disk_gb=runs * adapter / 1e9,
        notes=[
            "every run to max_steps: an upper bound (runs stop early at the stop ratio)",
            "LoRA step = 2 forward-equivalents per token (frozen weights: no weight gradients)",
        ],
        launch="python -m provenance_lib run {params} --stages 05   # writes the Slurm array; then: "
        f"bash {unlearning_work_dir(Path('runs') / '<name>') / 'submit.sh'}",
    )


def binning_operations(replicates: int, queries: int, documents: int) -> float:
    """Stage 03's bootstrap in element operations: per replicate, every query's score on every bin and every
    working-set document is resampled once."""
    return replicates * (queries * load_taxonomy().n_bins + documents)


def contrast_operations(replicates: int) -> float:
    """Stage 04's bootstrap in element operations: per replicate, the topic and the format marginals gather every
    bin once per benchmark (2 x benchmarks x bins), and both correlation methods resample every benchmark's bins and
    multiply the profiles pairwise (2 x bins x benchmarks x (1 + benchmarks))."""
    bins, k = load_taxonomy().n_bins, len(BENCHMARKS)
    return replicates * (2 * k * bins + 2 * bins * k * (1 + k))


def stage_cpu(stage: str, params: StudyParams, costs: dict) -> StageCost:
    """Stages 03-04: bootstrap over queries and documents, on CPU; counted in element operations."""
    if stage == "03_binning":
        replicates = params.binning.bootstrap
        elements = binning_operations(replicates, queries(), working_set(params)["documents"])
    else:
        replicates = params.contrast.bin_bootstrap
        elements = contrast_operations(replicates)
    return StageCost(
        stage,
        dict(bootstrap_replicates=replicates, element_operations=elements),
        cpu_hours=elements / costs["cpu_element_ops_per_s"] / 3600,
        notes=[f"numpy, one process: {costs['cpu_element_ops_per_s']:.3g} element ops/s measured here"],
        launch=f"python -m provenance_lib run {{params}} --stages {stage[:2]}",
    )


# ----------------------------------------------------------------------------------------------- the estimate
@functools.cache
def measure_numpy(elements: int = 1 << 22, repeats: int = 3) -> float:
    """Element operations per second of a bootstrap's inner step (a seeded gather + mean), on this machine: the
    per-unit cost of stages 03-04. A small measurement (~0.1 s); best of ``repeats``; once per process, so that
    estimates compared in one process (params A vs B) share one rate and differ only by their work."""
    import time

    import numpy as np

    rng = np.random.default_rng(0)
    values, index = rng.standard_normal(elements), rng.integers(0, elements, elements)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        values[index].mean()
        best = min(best, time.perf_counter() - started)
    return elements / best


def estimate(params: StudyParams, measured: dict) -> list[StageCost]:
    """``measured``: the per-unit costs ``measured_costs`` reads from the bench scripts' output."""
    costs = {**DEFAULTS, **measured, "cpu_element_ops_per_s": measure_numpy()}
    return [
        stage_sampling(params, costs),
        stage_gradients(params, costs),
        stage_cpu("03_binning", params, costs),
        stage_cpu("04_contrast", params, costs),
        stage_unlearning(params, costs),
    ]


BENCH_COMMANDS = {
    "gradients.json": "bench/bench_gradients.py --world runs/testbed/world",
    "sampling.json": "bench/bench_sampling.py --docs 100000 --words 500 1500 --per-shard 2000 --tasks 1 --old ''",
}


def measured_costs(folder: str | Path) -> dict:
    """Per-unit costs from the bench scripts' JSON in ``folder``: stage 02's ratio to a plain forward + backward
    (SmolLM2's row when measured, else the testbed model's) and stage 01's CPU per document read."""
    bench = {}
    for name, command in BENCH_COMMANDS.items():
        path = Path(folder) / name
        if not path.is_file():
            raise ProvenanceError(
                f"no measured per-unit cost: {path} is missing",
                f"run `python {command} > {path}` (or pass --bench-dir)",
            )
        bench[name] = read_json(path)
    return {**from_bench(bench["gradients.json"]), **sampling_from_bench(bench["sampling.json"])}


def from_bench(bench: dict) -> dict:
    """``bench_gradients.py``'s JSON: the whole stage's CPU-time ratio to a plain forward + backward."""
    models = bench.get("models") or {}
    row = models.get("smollm2-135m") or next(iter(models.values()), None)
    if not row or "stage" not in row.get("ratio_to_plain", {}):
        raise ProvenanceError(
            "the bench JSON has no models.<model>.ratio_to_plain.stage",
            "pass the JSON that bench/bench_gradients.py prints",
        )
    return {"collection_ratio": float(row["ratio_to_plain"]["stage"])}


def sampling_from_bench(bench: dict) -> dict:
    """``bench_sampling.py``'s JSON: the datatrove stage's CPU per document read, one task (the largest corpus)."""
    runs = [
        run
        for corpus in bench.get("corpora", [])
        for run in corpus.get("runs", [])
        if run.get("engine") == "datatrove" and run.get("tasks") == 1
    ]
    if not runs:
        raise ProvenanceError(
            "the bench JSON has no one-task datatrove run", "pass the JSON that bench/bench_sampling.py prints"
        )
    largest = max(runs, key=lambda run: run["documents"])
    return {"sampling_cpu_us_per_document": float(largest["stage_cpu_us_per_document"])}


def format_estimate(costs: list[StageCost], params_path: str) -> str:
    gpu = sum(c.gpu_hours for c in costs)
    lines = [
        f"Estimate for {params_path} (a dry run: nothing read from the hub)",
        "",
        f"{'stage':<15}{'GPU-h (H200)':>14}{'CPU-h':>10}{'disk GB':>11}  work",
    ]
    for c in costs:
        work = ", ".join(f"{k} {v:,.3g}" if isinstance(v, float) else f"{k} {v:,}" for k, v in c.work.items())
        lines.append(f"{c.stage:<15}{c.gpu_hours:>14,.0f}{c.cpu_hours:>10,.1f}{c.disk_gb:>11,.0f}  {work}")
        lines += [f"{'':<15}  - {note}" for note in c.notes]
    lines += [
        f"{'total':<15}{gpu:>14,.0f}{sum(c.cpu_hours for c in costs):>10,.1f}{sum(c.disk_gb for c in costs):>11,.0f}",
        f"paper (reported): ~{paper_gpu_hours():,.0f} H200-hours; this estimate is {gpu / paper_gpu_hours():.2f} of it",
        "",
        "Assumptions: " + ", ".join(f"{k}={v:g}" for k, v in HARDWARE.items()),
        "",
        "Launch (from a head node with hub access and the shared file system):",
    ]
    lines += [f"  {c.stage}: {c.launch.format(params=params_path)}" for c in costs]
    return "\n".join(lines)
