"""Stage 05 — unlearning: the causal test of the attribution. Does forgetting a topic's top-attributed documents
damage the benchmark they are attributed to more than forgetting matched random documents of the same topic?

1. **Forget sets** (``forget_sets``), by rule from stage 02's per-document scores: for each benchmark, target topic
   (named, all, or ``auto``: the benchmark's top topics under stage 03's reading), construction (inside the topic's
   highest-attribution bin, or across the topic) and seed, the top documents and a seeded random set of the rest of
   the same pool matched in count and tokens; and a global random control of the same size.
2. **Runs** (``train``, ``jobs``): NGDiff (or GradDiff) with a peft LoRA adapter per forget set; the random partner
   and the control take exactly the targeted run's steps, seed, hyperparameters and retain stream. Each run is an
   independent, resumable job (here one after another; at paper scale a Slurm job array of ``accelerate launch``
   tasks).
3. **Evaluation** (``evaluate``): lm-eval on the four benchmarks, in memory, on the scored items (never the stop
   checks' held-out ones); gamma = baseline - unlearned on accuracy and on the mean gold-answer log-likelihood, per
   item kept.
4. **Statistics** (``paired``): paired differences d = gamma_targeted - gamma_random over clusters of pairs that
   share documents (median + cluster bootstrap CI, Wilcoxon, d_z), the paper's pairwise statistics beside them,
   paired t on topic means, BH, selectivity, gamma_net; beside the paper's values.

Released: the forget sets as id manifests, every adapter with its model card, the tables and the figure.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ...artifacts import link_or_copy, read_json, savefig, sha256_file, write_json, write_parquet
from ...benchmarks import BY_NAME
from ...errors import ProvenanceError
from ...taxonomy import load as load_taxonomy
from ..gradients.scores import GradientScores
from ..sampling import MANIFEST, iter_working_set
from . import jobs, paired
from .checkpoints import base_identity, load_adapter
from .data import DocumentStore
from .evaluate import ITEM_COLUMNS, item_split, task_sizes
from .forget_sets import (
    SHORTFALL_COLUMNS,
    build_pairs,
    eligible,
    global_set,
    manifest_tables,
    resolve_topics,
    shortfalls,
)

__all__ = ["run", "load_result", "unlearn", "UnlearningResult", "load_adapter"]

SETS, IDS = "forget_sets/sets.parquet", "forget_sets/ids.parquet"
RUNS, ITEMS, PAIRS, STATS = "runs.parquet", "items.parquet", "pairs.parquet", "paired_stats.parquet"
SELECTIVITY, NET, SUMMARY, FIGURE = (
    "selectivity.parquet",
    "net_damage.parquet",
    "unlearning_summary.json",
    "paired_damage.png",
)
EVAL_ITEMS = "evaluation_items.parquet"
ADAPTERS = "adapters"


@dataclass
class UnlearningResult:
    out_dir: Path
    summary: dict
    forget_sets: pd.DataFrame
    runs: pd.DataFrame
    pairs: pd.DataFrame
    statistics: pd.DataFrame
    selectivity: pd.DataFrame
    net_damage: pd.DataFrame

    def paper_table(self, measure: str = "acc") -> pd.DataFrame:
        return paired.paper_table(self.statistics, measure)

    def shortfalls(self) -> pd.DataFrame:
        return pd.DataFrame(self.summary["shortfalls"], columns=SHORTFALL_COLUMNS)


def load_result(out_dir: str | Path) -> UnlearningResult:
    out_dir = Path(out_dir)
    tables = [pd.read_parquet(out_dir / name) for name in (SETS, RUNS, PAIRS, STATS, SELECTIVITY, NET)]
    return UnlearningResult(out_dir, read_json(out_dir / SUMMARY), *tables)


# ----------------------------------------------------------------------------------------------- the stage
def run(stage) -> UnlearningResult:
    """Stage 05 on a run: stage 01's working set, stage 02's scores (checked to belong to it), the world's model
    and benchmarks; runs in ``<run>/work/05_unlearning`` survive a failed or re-executed stage."""
    sampling_dir = stage.input_dir("01_sampling")
    scores = GradientScores.load(stage.input_dir("02_gradients"))
    scores.check_manifest(sha256_file(sampling_dir / MANIFEST))
    world = stage.world
    base = stage.world_path(world.base_model)
    reading = binning_reading(stage.input_dir(BINNING)) if stage.params.unlearning.forget.topics == "auto" else None
    return unlearn(
        stage.params,
        scores,
        sampling_dir,
        task_dir=stage.world_path(world.task_dir),
        tasks=world.tasks,
        base_model=str(base) if base.exists() else world.base_model,
        base_revision=world.base_revision,
        out_dir=stage.out_dir,
        work_dir=work_dir(stage.run_dir),
        name=stage.run_dir.name,
        reading=reading,
    )


def work_dir(run_dir: Path) -> Path:
    """Where a run's unlearning jobs, their Slurm scripts (``submit.sh``) and their results live."""
    return Path(run_dir) / "work" / "05_unlearning"


BINNING = "03_binning"


def binning_reading(folder: Path) -> pd.DataFrame:
    """Stage 03's bin z-scores of the variant the study reads, all queries: benchmark, bin, z, masked."""
    from ..binning import load_result as load_binning

    result = load_binning(folder)
    table = result.table
    chosen = table[(table["variant"] == result.reading) & (table["split"] == "all")]
    return chosen[["benchmark", "bin", "z", "masked"]].reset_index(drop=True)


def unlearn(
    params,
    scores: GradientScores,
    sampling_dir: Path,
    *,
    task_dir: Path,
    tasks: dict[str, str],
    base_model: str,
    base_revision: str | None,
    out_dir: Path,
    work_dir: Path,
    name: str = "study",
    reading: pd.DataFrame | None = None,
) -> UnlearningResult:
    """The whole stage from explicit inputs (``params``: StudyParams; ``reading``: stage 03's, for auto topics):
    plan, run (or collect), analyse, write."""
    started = time.perf_counter()
    out_dir, work_dir = Path(out_dir), Path(work_dir)
    p = params.unlearning
    plan, sets, missing = make_plan(
        params, scores, sampling_dir, task_dir, tasks, base_model, base_revision, work_dir, reading
    )
    info, ids = manifest_tables(sets)
    write_parquet(out_dir / SETS, info)
    write_parquet(out_dir / IDS, ids)
    write_parquet(out_dir / EVAL_ITEMS, evaluation_items(plan))
    if p.launcher == "local":
        store = DocumentStore(work_dir / jobs.STORE)
        for index in _progress(range(len(plan.tasks)), "unlearning pairs"):
            jobs.run_task(plan, index, store)
    finished, unfinished = jobs.collect(plan)
    if unfinished:
        submit = jobs.write_slurm(plan, p.slurm, name)
        raise ProvenanceError(
            f"{len(unfinished)} of {len(plan.tasks)} unlearning pairs have not finished (launcher: {p.launcher})",
            f"submit the job array with {submit} (it never resubmits "
            "finished runs), then run this stage again to collect them",
        )
    runs, items = run_tables(plan, finished)
    write_parquet(out_dir / "baseline.parquet", jobs.baseline(plan))
    write_parquet(out_dir / RUNS, runs)
    write_parquet(out_dir / ITEMS, items)
    pairs = paired.pair_table(runs, ids)
    statistics = paired.paired_statistics(pairs, p.bootstrap, p.confidence, params.seed)
    selectivity, net = paired.selectivity(runs), paired.net_damage(runs)
    for path, table in ((PAIRS, pairs), (STATS, statistics), (SELECTIVITY, selectivity), (NET, net)):
        write_parquet(out_dir / path, table)
    _release_adapters(finished, out_dir / ADAPTERS)
    if len(pairs):
        import matplotlib.pyplot as plt

        fig = paired.plot_pairs(pairs)
        savefig(out_dir / FIGURE, fig)
        plt.close(fig)
    per_run = runs.drop_duplicates("run")
    summary = dict(
        base_model=base_identity(plan.base_model, plan.base_revision),
        launcher=p.launcher,
        pairs=len(plan.tasks),
        pairs_requested=len(plan.tasks) + len(missing),
        topics=plan.topics,
        runs=len(per_run),
        sets=len(sets),
        shortfalls=shortfalls(sets, missing).to_dict("records"),
        stop_checks={
            "benchmarks": sorted(plan.stop_items),
            "items": {b: len(v) for b, v in plan.stop_items.items()},
            "scored_items": {b: len(v) for b, v in plan.scorer["items"].items()},
            "disjoint": not any(
                set(plan.stop_items[b]) & set(plan.scorer["items"].get(b, [])) for b in plan.stop_items
            ),
        },
        stopped_early=int(per_run["stopped_early"].sum()),
        steps={"min": int(per_run["steps"].min()), "max": int(per_run["steps"].max())},
        train_s=round(float(per_run["train_s"].sum()), 1),
        stage_s=round(time.perf_counter() - started, 1),
        scores_manifest_sha256=scores.info.get("manifest_sha256"),
    )
    write_json(out_dir / SUMMARY, summary)
    return load_result(out_dir)


def make_plan(
    params,
    scores: GradientScores,
    sampling_dir: Path,
    task_dir: Path,
    tasks: dict[str, str],
    base_model: str,
    base_revision: str | None,
    work_dir: Path,
    reading: pd.DataFrame | None = None,
):
    """The forget sets, the task list (written to ``work_dir/plan.json`` with the document store beside it), and the
    requested pairs that could not be built."""
    p = params.unlearning
    benchmarks = p.forget.benchmarks or scores.benchmarks
    absent = sorted(set(benchmarks) - set(scores.benchmarks))
    if absent:
        raise ProvenanceError(
            f"unlearning.forget.benchmarks {absent} have no stage 02 scores", f"choose from {scores.benchmarks}"
        )
    seeds = [params.seed + i for i in range(p.forget.seeds)]
    topics = resolve_topics(scores.doc_scores, p.forget, benchmarks, reading)
    pairs, missing = build_pairs(scores.doc_scores, p.forget, topics, seeds)
    if not pairs:
        raise ProvenanceError(
            "no forget set could be built",
            "check unlearning.forget (topics, docs, min_tokens): " + "; ".join(missing["reason"].drop_duplicates()),
        )
    docs = eligible(scores.doc_scores, p.forget.min_tokens)
    controls = {(s, n): global_set(docs, n, s) for s, n in sorted({(q.targeted.seed, q.targeted.size) for q in pairs})}
    sets = [s for q in pairs for s in (q.targeted, q.random)]
    sets += (
        list(dict.fromkeys(controls[(q.targeted.seed, q.targeted.size)] for q in pairs))
        if p.forget.global_control
        else []
    )
    task_list = [
        {
            "targeted": q.targeted.name,
            "random": q.random.name,
            "global": controls[(q.targeted.seed, q.targeted.size)].name if p.forget.global_control else None,
            "exclude_topic": _topic_id(q.targeted.topic),
        }
        for q in pairs
    ]
    duplicated = sorted(name for name, count in Counter(s.name for s in sets).items() if count > 1)
    if duplicated:
        raise ProvenanceError(f"forget sets {duplicated} share a name", "give every forget set a unique name")
    _ensure_store(work_dir, sampling_dir)
    names = {b: tasks[b] for b in BY_NAME if b in tasks}
    t = p.training
    scored, stop = item_split(
        task_sizes(task_dir, names),
        t.stop_benchmarks,
        t.stop_share,
        t.stop_items,
        p.evaluation.limit,
        params.seed,
        checks=t.stop_check_every is not None,
    )
    scorer = dict(
        task_dir=str(Path(task_dir).resolve()),
        tasks=names,
        shots=p.evaluation.shots,
        items=scored,
        batch_size=p.evaluation.batch_size,
    )
    plan = jobs.Plan(
        work_dir=str(work_dir.resolve()),
        base_model=base_model,
        base_revision=base_revision,
        scorer=scorer,
        unlearning=p.model_dump(mode="json"),
        threads=params.threads,
        sets={s.name: s.__dict__ | {"ids": list(s.ids)} for s in sets},
        tasks=task_list,
        stop_items=stop,
        topics={b: [load_taxonomy().topics.labels[t].key for t in ids] for b, ids in topics.items()},
    )
    plan.check_keys()
    plan.save()
    return plan, sets, missing


def evaluation_items(plan: jobs.Plan) -> pd.DataFrame:
    """Which items of each benchmark's task are scored and which the stop checks hold out (task positions)."""
    rows = [
        (b, i, role)
        for role, items in (("scored", plan.scorer["items"]), ("stop_check", plan.stop_items))
        for b, positions in items.items()
        for i in positions
    ]
    return pd.DataFrame(rows, columns=["benchmark", "item", "role"])


def _topic_id(key: str) -> int:
    return load_taxonomy().topics.get(key).id


def _ensure_store(work_dir: Path, sampling_dir: Path) -> None:
    """The working set's texts as an Arrow file, rebuilt when stage 01's manifest changed."""
    manifest = sha256_file(Path(sampling_dir) / MANIFEST)
    stamp = work_dir / "documents.json"
    if (work_dir / jobs.STORE).is_file() and stamp.is_file() and read_json(stamp).get("manifest_sha256") == manifest:
        return
    DocumentStore.write(work_dir / jobs.STORE, iter_working_set(sampling_dir))
    write_json(stamp, {"manifest_sha256": manifest})


def run_tables(plan: jobs.Plan, finished: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per run and evaluated benchmark, with its pair's global-control damage; one row per run and item).
    A run two tasks share (the same run, by its key) is listed once."""
    rows, items, seen = [], [], set()
    for task in finished:
        control = {r["benchmark"]: r for r in task["global"][1]["results"]} if "global" in task else {}
        for folder, done in task.values():
            if folder in seen:
                continue
            seen.add(folder)
            s = plan.sets[done["set"]]
            for r in done["results"]:
                rows.append(
                    dict(
                        set=done["set"],
                        kind=s["kind"],
                        construction=s["construction"],
                        benchmark=s["benchmark"],
                        topic=s["topic"],
                        bin=s["bin"],
                        seed=s["seed"],
                        size=len(s["ids"]),
                        tokens=s["tokens"],
                        steps=done["steps"],
                        stopped_early=done["stopped_early"],
                        train_s=done["train_s"],
                        evaluated=r["benchmark"],
                        n=r["n"],
                        acc=r["acc"],
                        gold_loglik=r["gold_loglik"],
                        gamma_acc=r["gamma_acc"],
                        gamma_gold_loglik=r["gamma_gold_loglik"],
                        **{
                            f"gamma_global_{m}": control[r["benchmark"]][f"gamma_{m}"] if control else None
                            for m in ("acc", "gold_loglik")
                        },
                        run=folder.name,
                    )
                )
            items.append(pd.read_parquet(folder / jobs.ITEMS).assign(set=done["set"], run=folder.name))
    runs = pd.DataFrame(rows).astype({"bin": "Int64"})
    return runs, pd.concat(items, ignore_index=True)[["set", "run", *ITEM_COLUMNS]]


def _release_adapters(finished: list[dict], target: Path) -> None:
    """Every run's adapter under ``adapters/<set name>`` (a global control: ``<set name>-<run key>``, as several
    pairs forget its set on their own retain streams), hard-linked where the disk allows. Replaces what an earlier
    execution into the same folder released."""
    shutil.rmtree(target, ignore_errors=True)
    for task in finished:
        for kind, (folder, done) in task.items():
            dest = target / (f"{done['set']}-{folder.name}" if kind == "global" else done["set"])
            if not dest.exists():
                shutil.copytree(folder / jobs.ADAPTER, dest, copy_function=link_or_copy)


def _progress(iterable, desc: str):
    from tqdm import tqdm  # text bars: executed notebooks keep them (tqdm.auto's widgets need ipywidgets)

    return tqdm(iterable, desc=desc)
