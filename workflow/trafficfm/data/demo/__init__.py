"""Demo data: a small synthetic release in the organisers' exact raw layout.

The product's default run uses it end to end: :func:`make_demo_release` writes the raw folders
(AllInOne track: classification, detection, segmentation; retrieval track: vehicles and
pedestrians with captions), :func:`pack_archives` packs them into the release's archives, which
the pipeline then fetches through ``file://`` URLs like real data.

Modules: ``draw`` (shared drawing helpers), ``classification`` (car models), ``signs`` and
``detection`` (street views with traffic signs), ``segmentation`` (street scenes with label
maps), ``vehicles``, ``pedestrians`` and ``retrieval`` (crops, attributes, captions, queries),
``hard`` (the ``hard`` profile: the real datasets' difficulties), ``release`` (orchestration, quirks of the raw text files, archives).
"""

from .pedestrians import PEDESTRIAN_ATTRIBUTES
from .release import archive_folders, label_space, make_demo_release, pack_archives

__all__ = ["PEDESTRIAN_ATTRIBUTES", "archive_folders", "label_space", "make_demo_release", "pack_archives"]
