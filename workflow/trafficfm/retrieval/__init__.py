"""Retrieval track: fine-tune an open_clip model for text -> traffic-participant image search.

relevance (the organisers' matching relation), metrics (their mAP@10, Recall@K), model (open_clip
by name; the offline EfficientNet-Lite0 + MiniLM default), data (datasets, attribute-grouped
sampler), loss (multi-positive contrastive), train (fine-tuning), rank (exact chunked top-k,
re-ranking), evaluate (validation before/after), predict (test rankings).
"""
