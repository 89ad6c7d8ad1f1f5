"""The ``submission:`` config section with its defaults (see workflow/schemas/submission.example.yaml)."""

from __future__ import annotations

import copy

DEFAULTS = {
    "score_split": "val",
    "box_tolerance_px": 1.0,
    "max_listed": 200,
    "allinone": {
        "json_name": "pred_results.json",
        "form": "list",
        "max_dets_per_image": 100,
        "small_contours": "pad",
    },
    "retrieval": {
        "json_name": "infer_json.json",
        "top_k": 10,
    },
}


def submission_settings(section: dict | None) -> dict:
    """The config's ``submission`` section over :data:`DEFAULTS` (missing keys take the default)."""
    merged = copy.deepcopy(DEFAULTS)
    for key, value in (section or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key].update(value)
        else:
            merged[key] = value
    return merged
