"""Stage 01 — sampling: de-duplicate the corpus, give every document its WebOrganizer bin, and draw the stratified
working set (``target_per_bin`` documents from each of the 576 topic x format bins).

The draw: in canonical corpus order (shards sorted by relative name, then row) drop id duplicates, then text
duplicates among the id survivors (text normalized: NFC, case-folded, whitespace collapsed), each time keeping the
first occurrence; then take per bin the ``target_per_bin`` documents with the smallest keyed hash of their text
(bottom-k: a uniform sample without replacement, a pure function of content and seed). Bins with fewer documents
give all they have and are reported. Nothing depends on the order shards are read in, on how many tasks read them
or on how many hash buckets partition them: every split of the work writes the same manifest, byte for byte.

Engine: datatrove, HF's library for web-scale text processing (``engine``). Its executors run each step as
independent tasks: in this process or a local process pool (LocalPipelineExecutor), as Slurm job arrays chained by
dependencies (SlurmPipelineExecutor), or on a Ray cluster; they mark each completed task, so a rerun after a crash
does only what is left, and keep a log per task. The steps (``steps``: map, ids, texts, annotate, bins, merge,
fetch) hand each other 30-byte rows (position, id hash, text hash, topic, format, tokens; no text) through a work
folder inside the stage folder, removed once the stage completed.

No step holds the corpus. Both de-duplications are partitioned by hash: every copy of an id (then of a text)
lands in the same bucket, so each bucket finds its first copies on its own; an id duplicate never reaches a text
bucket, so it cannot hide a text. Bottom-k merges: the bottom-k of a bin is the bottom-k of the buckets' bottom-k.
At paper scale (Dolma3 6T mix: 1.26e9 unique documents at a duplication rate of 0.673, so ~3.87e9 read) a map task
holds a chunk of rows and a 7.5 MiB flush buffer; a bucket task 30 bytes per row of its bucket and ~5x that at its
peak (3.8M rows at 1024 buckets: ~0.6 GB); a merge task the candidates of its bins (at most buckets x target each);
the stage's own process only the sample (576 x 10,000 rows, 170 MiB) and the counts. The engine this replaced
gathered 30 bytes per distinct id on one rank: 38 GB, twice that at its peak.

Why datatrove, rather than the torch.distributed ranks it replaces or a general engine (Ray Data, Spark): it is
made for this job (tasks over jsonl.zst shards, Slurm arrays, completion markers, per-task logs and stats), the
same steps run on a laptop and a cluster, and it brings few dependencies (loguru, humanize; orjson). Its
JsonlReader is not used: it skips a corrupt line with a warning and drops documents with an empty text (a silently
different sample, shifted row numbers); ``corpus.iter_shard`` reads instead (orjson, truncated files caught,
errors naming file and line).

Labels come from the shard metadata; what is missing (Dolma3 has topics, no formats) comes from the WebOrganizer
classifiers in the annotate step, for unique documents only (a third of those read at the paper's duplication
rate), each task on its own GPU, cached per shard (``annotate``); base-model token counts too. 64-bit hashes: the
chance of any false duplicate among 1.26e9 documents is n^2 / 2^65 = 4 %, and it would drop one document.
"""

from __future__ import annotations

from .engine import sample
from .index import ROW, normalize_text, sampling_key, text_hash, token_counter
from .job import (
    HEATMAP,
    MANIFEST,
    SKEW,
    SUMMARY,
    UNLABELLED,
    WORKING_SET,
    SamplingJob,
    ShardRef,
    corpus_shards,
    stage_job,
)
from .outputs import SamplingResult, load_result, plot_skew, save_heatmap, skew_table
from .select import CorpusIndex, Selection, iter_working_set


# ----------------------------------------------------------------------------------------------- the stage
def run(stage) -> SamplingResult:
    """Stage 01 end to end: sample, write manifest, summary, skew table, working set and the skew heatmap. The work
    folder (``stage.work_dir``) is left for the runner, which removes it once the notebook completed."""
    result = sample(stage_job(stage), keep_work=True)
    save_heatmap(result)
    return result
