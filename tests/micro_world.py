"""A micro world for stage 05's fast tests: a one-layer OLMo3 model on a word tokenizer, four lm-eval tasks of a few
items, a stage 01 working set of a few bins, and stage 02 scores from a known matrix (``synthetic``). Built in about
a second, so the whole protocol (plan, runs, lm-eval, statistics) runs in the fast suite."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from provenance_lib import corpus, params
from provenance_lib.artifacts import sha256_file, write_parquet
from provenance_lib.benchmarks import BY_NAME, write_lm_eval_tasks, write_queries
from provenance_lib.stages.gradients.scores import GradientScores
from provenance_lib.taxonomy import load as load_taxonomy
from provenance_lib.worlds.testbed import training
from synthetic import scores_from_matrix

TESTBED = Path(__file__).resolve().parents[1] / "params" / "testbed.yaml"
WORDS = [f"w{i}" for i in range(40)]
ANSWERS = ["red", "blue", "green", "gold"]
# three topics, two bins in the first: (topic, format) short names
BINS = [
    ("Literature", "Customer Support"),
    ("Literature", "Tutorial"),
    ("Politics", "Documentation"),
    ("Health", "Knowledge Article"),
]
DOCS_PER_BIN = 6


@dataclass
class MicroWorld:
    root: Path
    model_dir: Path
    task_dir: Path
    tasks: dict[str, str]
    sampling_dir: Path
    scores: GradientScores

    def study(self, *overrides):
        """Testbed params shrunk to the micro world: one benchmark, one topic, one seed, two steps."""
        return params.load(
            TESTBED,
            [
                "unlearning.forget.benchmarks=[SocialIQA]",
                "unlearning.forget.topics=[Literature]",
                "unlearning.forget.seeds=1",
                "unlearning.forget.docs=3",
                "unlearning.forget.constructions=[bin]",
                "unlearning.training.max_steps=2",
                "unlearning.training.batch_size=2",
                "unlearning.training.retain_docs_per_topic=3",
                "unlearning.training.lr=0.01",
                "unlearning.evaluation.batch_size=16",
                *overrides,
            ],
        )

    def unlearn_kwargs(self, out: Path) -> dict:
        return dict(
            task_dir=self.task_dir,
            tasks=self.tasks,
            base_model=str(self.model_dir),
            base_revision=None,
            out_dir=out / "05_unlearning",
            work_dir=out / "work",
        )


def _text(rng, planted: bool) -> str:
    words = list(rng.choice(WORDS, size=int(rng.integers(8, 30))))
    if planted:
        words += ["the", "answer", "is", "red", "."] * 3
    return " ".join(words)


def build(root: Path) -> MicroWorld:
    rng = np.random.default_rng(0)
    tax = load_taxonomy()
    records = []
    for b, (topic, fmt) in enumerate(BINS):
        bin_id = tax.bin_id(topic, fmt)
        for i in range(DOCS_PER_BIN):
            text = _text(rng, planted=(b == 0 and i % 2 == 0))
            records.append(
                {
                    "id": f"doc-{b}-{i}",
                    "text": text,
                    "source": "micro",
                    "metadata": {
                        **corpus.label_metadata(tax.topics.get(topic).key, tax.formats.get(fmt).key),
                        "sampling": {"bin": bin_id, "tokens": len(text.split())},
                    },
                }
            )
    sampling = root / "01_sampling"
    corpus.write_shard(sampling / "working_set" / "micro-0000.jsonl.zst", records)
    docs = pd.DataFrame(
        {
            "id": [r["id"] for r in records],
            "bin": [r["metadata"]["sampling"]["bin"] for r in records],
            "tokens": [r["metadata"]["sampling"]["tokens"] for r in records],
        }
    )
    write_parquet(sampling / "manifest.parquet", docs)

    rows = []
    for k, (name, bench) in enumerate(BY_NAME.items()):
        for i in range(4):
            choices = ANSWERS[: bench.n_choices]
            question = f"w{i + 4 * k} the answer is"
            rows.append(
                dict(
                    id=f"{bench.slug}-{i}",
                    benchmark=name,
                    split="eval",
                    question=question,
                    choices=choices,
                    answer=i % bench.n_choices,
                    domain=bench.domain,
                    capability=bench.capability,
                    subject=name,
                )
            )
    table = write_queries(root / "queries.parquet", rows)
    tasks = write_lm_eval_tasks(table, root / "tasks", prefix="micro")

    tokenizer = training.train_word_tokenizer([r["text"] for r in records] + [" ".join(WORDS + ANSWERS)])
    model = training.tiny_olmo3(tokenizer, layers=1, hidden=32, heads=2, mlp=64, max_positions=128, seed=0)
    model_dir = training.save_model(model, tokenizer, root / "model")

    queries = pd.DataFrame(
        [
            dict(
                query_index=i,
                id=r["id"],
                benchmark=r["benchmark"],
                subject=r["subject"],
                correct=True,
                gold_loglik=-1.0,
            )
            for i, r in enumerate(rows)
        ]
    )
    matrix = rng.normal(scale=0.1, size=(len(docs), len(queries)))
    planted = docs["id"].str.startswith("doc-0-") & (docs["id"].str[-1].astype(int) % 2 == 0)
    matrix[np.ix_(planted.to_numpy(), (queries["benchmark"] == "SocialIQA").to_numpy())] += 1.0
    scores = scores_from_matrix(docs, queries, matrix, manifest_sha256=sha256_file(sampling / "manifest.parquet"))
    return MicroWorld(root, model_dir, root / "tasks", tasks, sampling, scores)
