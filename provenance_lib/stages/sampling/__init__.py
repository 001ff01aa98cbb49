"""Stage 01 — sampling: de-duplicate the corpus, give every document its WebOrganizer bin, and draw the stratified
working set (``target_per_bin`` documents from each of the 576 topic x format bins).

Two maps over shards, which any number of workers share, around one merge:

1. **Index** (``index_shard``): stream a shard and keep five numbers per document — its position (shard ordinal and
   row), id hash, normalized-text hash, bin (-1: unlabelled) and token count — in a ``CorpusIndex`` (30 bytes a
   document, no text). Labels come from the shard metadata, or, for what is missing, from the WebOrganizer
   classifiers (``provenance_lib.labels``), called in batches.
2. **Select** (``select``): in canonical corpus order (shards sorted by relative name, then row) drop id duplicates,
   then text duplicates, each time keeping the first occurrence; then take per bin the ``target_per_bin`` documents
   with the smallest keyed hash of their text (bottom-k: a uniform sample without replacement, a pure function of
   content and seed). Bins with fewer documents give all they have and are reported. Nothing in the result depends
   on the order shards were read in or on how many workers read them, so every split of the work gives the same
   manifest, byte for byte.
3. **Fetch** (``write_working_set_shard``): stream again the shards that hold sampled documents and write their
   text into the working set (``working_set/<source shard>``, Dolma3 schema, read by stages 02 and 05); the released
   manifest keeps ids and hashes only.

Engine: torch.distributed ranks with the gloo backend. Rank r indexes and fetches shards r, r+R, ... of the sorted
list; the indexes are gathered on rank 0 only (``gather_object``: the merged index is the big object here, and
R copies of it would not fit a node at paper scale), which selects and broadcasts the sample; rank 0 writes the
released artifacts. ``workers > 1`` starts that many local ranks (rank 0 is the calling process); on a cluster
``torchrun ... -m provenance_lib.sampling --run-dir RUN`` runs the same code with torchrun's ranks, where GPU ranks
also run the classifiers. torch is already a dependency and carries the classifiers; datatrove's executors have no
in-memory merge step, and Ray would be a new dependency for one gather.

Memory: a per-bin bottom-k summary would be small, but it cannot de-duplicate exactly across shards: a copy that
is dropped can sit in another bin (the same text labelled differently, one id on two texts), and exact population
counts need every hash anyway. So the summary is the index itself, 30 B a document, never split by bin. Each rank
first drops its own id duplicates (exact: a record that is not first among its rank's copies of an id is not
first globally), so rank 0 holds about 30 B per distinct id, twice at the peak of the merge (gathered parts, then
the merged copy): at paper scale (Dolma3 mix, 1.26 B unique documents, each repeat sharing its id) about 38 GB,
76 GB at the peak, on one rank of the head node; every other rank holds 30 B per document it reads. Texts are never
held beyond one batch. 64-bit hashes: the chance of any false id- or text-duplicate among 1.26 B documents is about
n^2 / 2^65 = 4 %, and it would drop one document.
"""

from __future__ import annotations

from pathlib import Path

from .engine import sample
from .index import CorpusIndex, DocumentLabeller, normalize_text, sampling_key, text_hash, token_counter
from .job import (HEATMAP, MANIFEST, SKEW, SUMMARY, UNLABELLED, WORKING_SET, SamplingJob, ShardRef, corpus_shards,
                  stage_job)
from .outputs import SamplingResult, load_result, plot_skew, save_heatmap, skew_table
from .select import Selection, iter_working_set, select


# ----------------------------------------------------------------------------------------------- the stage
def run(stage) -> SamplingResult:
    """Stage 01 end to end: sample, write manifest, summary, skew table, working set and the skew heatmap."""
    result = sample(stage_job(stage))
    save_heatmap(result)
    return result
