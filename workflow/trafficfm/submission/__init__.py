"""Leaderboard submissions: build, validate, score and package the two tracks' JSON files.

* :mod:`.allinone` and :mod:`.retrieval` turn the inference stages' predictions (the contract in
  docs/data-contract.md) into the organisers' JSON structures;
* :mod:`.polygons` is the label map <-> polygon conversion of the AllInOne ``seg`` entry, both ways;
* :mod:`.validate` checks any submission file (JSON or zip) against a canonical split;
* :mod:`.score` computes the organisers' metrics on a labelled split;
* :mod:`.package` writes byte-reproducible zips, and only valid ones;
* :mod:`.cli` is the ``trafficfm-validate`` command.
"""
