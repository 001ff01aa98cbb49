"""The ``sampling`` section (stage 01), with the datatrove executor its steps run on."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from .base import Section


# --------------------------------------------------------------------------------------------------- executors
class LocalExecutor(Section):
    """datatrove's LocalPipelineExecutor: every step's tasks on this machine."""

    kind: Literal["local"]
    tasks: int = Field(
        default=1,
        gt=0,
        description="tasks the shards are split into (map, annotate and fetch steps); "
        "a task that completed is not redone when the stage runs again",
    )
    workers: int = Field(
        default=1,
        gt=0,
        description="tasks running at once, each in its own process; 1 = one after the other in this process",
    )


class SlurmExecutor(Section):
    """datatrove's SlurmPipelineExecutor: each step is a Slurm job array, chained by dependencies; this process
    submits them and waits. Run it on a login node (datatrove does not submit from inside a job)."""

    kind: Literal["slurm"]
    tasks: int = Field(gt=0, description="array tasks of the map, annotate and fetch steps (shards split evenly)")
    partition: str
    time: str = Field(default="12:00:00", description="time limit of one array task (sbatch --time)")
    cpus_per_task: int = Field(default=1, gt=0)
    mem_per_cpu_gb: int = Field(
        default=4,
        gt=0,
        description="a bucket task peaks at ~150 bytes per row of its bucket (+ ~100 MiB); a map task at ~150 MiB",
    )
    workers: int = Field(default=-1, description="array tasks running at once (sbatch --array=...%N); -1: no limit")
    qos: str | None = None
    gpu_partition: str | None = Field(
        default=None, description="partition of the annotate step when it runs a classifier on GPUs; null: `partition`"
    )
    gpus_per_task: int = Field(default=1, ge=0, description="GPUs of one annotate task (the FormatClassifier)")
    env_command: str | None = Field(
        default=None,
        description="shell line that activates the environment on a "
        "compute node, e.g. `source /path/.venv/bin/activate`",
    )
    sbatch_args: dict[str, str] = Field(default_factory=dict, description="extra #SBATCH options, e.g. account")
    max_array_size: int = Field(
        default=1001,
        gt=0,
        description="the cluster's MaxArraySize: a step of more tasks is submitted as several arrays",
    )
    submit: bool = Field(
        default=True,
        description="false: a dry run that writes the sbatch scripts into the stage folder and submits nothing",
    )
    poll_seconds: int = Field(default=60, gt=0, description="how often the waiting process checks on the jobs")


class RayExecutor(Section):
    """datatrove's RayPipelineExecutor on a running Ray cluster (`ray` is not a dependency: install it there)."""

    kind: Literal["ray"]
    address: str = Field(default="auto", description="ray.init address of the running cluster")
    tasks: int = Field(gt=0)
    workers: int = Field(default=-1, description="tasks running at once; -1: all")
    cpus_per_task: int = Field(default=1, gt=0)
    mem_per_cpu_gb: float = Field(default=4, gt=0)
    gpus_per_task: int = Field(default=1, ge=0, description="GPUs of one annotate task when it runs a classifier")


Executor = Annotated[LocalExecutor | SlurmExecutor | RayExecutor, Field(discriminator="kind")]


# --------------------------------------------------------------------------------------------------- stages
class Sampling(Section):
    """Stage 01: de-duplication, labels and the stratified working set."""

    NOT_IN_FINGERPRINT: ClassVar[frozenset[str]] = frozenset({"executor"})  # same manifest on any (tested)

    target_per_bin: int = Field(gt=0, description="documents drawn per topic x format bin (paper: 10,000)")
    tokens: Literal["whitespace", "base_model"] = Field(
        default="whitespace",
        description="how documents' tokens are counted: whitespace words or the base model's "
        "tokenizer (manifest token column, token skew statistics)",
    )
    batch_size: int = Field(default=256, gt=0, description="documents per classifier / tokenizer call")
    executor: Executor = Field(
        default=LocalExecutor(kind="local"), description="where the steps run (the result does not depend on it)"
    )
    buckets: int | None = Field(
        default=None,
        gt=0,
        description=(
            "hash partitions of the de-duplication: each bucket task holds ~1/buckets of the corpus's rows (30 bytes "
            "each). null: one bucket per ~1M documents read (estimated from the largest shard)"
        ),
    )
