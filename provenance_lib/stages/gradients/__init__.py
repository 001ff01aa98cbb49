"""Stage 02 — gradient collection: TrackStar attribution through bergson, streamed into bin-level and
document-level scores. ``scores`` is what stages 03-05 read."""
