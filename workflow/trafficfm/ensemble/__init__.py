"""Experiments side by side: compact soft predictions of each member (:mod:`.soft`), their fusion
into an ensemble (:mod:`.allinone`, :mod:`.retrieval`), and the comparison of experiments
(:mod:`.compare`)."""
