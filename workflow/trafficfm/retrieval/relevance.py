"""THE matching relation of the retrieval track (the organisers' ``track2/test.py``).

An image matches a query when

* their attribute texts are equal, or
* both are pedestrian attribute vectors (``PEDESTRIAN_ATTRIBUTE_COUNT`` comma-separated 0/1
  values), their first value (gender) is equal, and the image's vector has a 1 wherever the
  query's has one (attribute inclusion).

The relation is asymmetric for pedestrians: a query with fewer 1s matches images with more.
Every other module (loss, metrics, evaluation) asks this one; nothing else re-implements it.

:func:`is_relevant` is the plain scalar statement of the rule; :class:`AttributeCodec` encodes
attribute texts once so that :func:`relevance_matrix` evaluates the same rule for whole
query x image blocks with tensor operations.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..data.classes import PEDESTRIAN_ATTRIBUTE_COUNT


def pedestrian_fields(attribute: str, width: int = PEDESTRIAN_ATTRIBUTE_COUNT) -> list[str] | None:
    """The comma-separated fields of a pedestrian attribute text, or None when it is not one.

    As the organisers' script does, a text is a pedestrian vector when it splits into ``width``
    fields; fields are compared as strings (no stripping), ``'1'`` meaning the attribute is present.
    """
    parts = attribute.split(",")
    return parts if len(parts) == width else None


def is_relevant(query_attribute: str, image_attribute: str, width: int = PEDESTRIAN_ATTRIBUTE_COUNT) -> bool:
    """Does an image with ``image_attribute`` match a query whose attribute is ``query_attribute``?"""
    if query_attribute == image_attribute:
        return True
    query = pedestrian_fields(query_attribute, width)
    image = pedestrian_fields(image_attribute, width)
    if query is None or image is None:
        return False
    if query[0] != image[0]:  # gender
        return False
    return all(i == "1" for q, i in zip(query, image) if q == "1")


@dataclass
class AttributeCodec:
    """Integer ids for attribute texts, plus their pedestrian vectors, for vectorised matching.

    ``encode`` assigns ids in first-seen order; ids are stable for the life of the codec, so
    training batches and evaluation galleries share one vocabulary.
    """

    width: int = PEDESTRIAN_ATTRIBUTE_COUNT
    ids: dict[str, int] = field(default_factory=dict)
    texts: list[str] = field(default_factory=list)
    _fields: list[list[str] | None] = field(default_factory=list)
    _genders: dict[str, int] = field(default_factory=dict)
    _table: torch.Tensor | None = None  # cached (n, 2 + width) int16: is_ped, gender id, ones

    def add(self, attribute: str) -> int:
        index = self.ids.get(attribute)
        if index is None:
            index = len(self.texts)
            self.ids[attribute] = index
            self.texts.append(attribute)
            self._fields.append(pedestrian_fields(attribute, self.width))
            self._table = None
        return index

    def encode(self, attributes: Iterable[str]) -> torch.Tensor:
        return torch.tensor([self.add(a) for a in attributes], dtype=torch.long)

    def __len__(self) -> int:
        return len(self.texts)

    def table(self) -> torch.Tensor:
        """(n, 2 + width) int16 rows: is-pedestrian flag, gender id (the first field's text), and
        1 where a field is ``'1'`` (zeros for vehicles)."""
        if self._table is None or len(self._table) != len(self.texts):
            rows = np.zeros((len(self.texts), 2 + self.width), dtype=np.int16)
            for index, fields in enumerate(self._fields):
                if fields is not None:
                    rows[index, 0] = 1
                    rows[index, 1] = self._genders.setdefault(fields[0], len(self._genders))
                    rows[index, 2:] = [f == "1" for f in fields]
            self._table = torch.from_numpy(rows)
        return self._table

    def is_pedestrian(self, ids: torch.Tensor) -> torch.Tensor:
        return self.table()[ids.cpu(), 0].bool()

    def matrix(self, query_ids: torch.Tensor, image_ids: torch.Tensor) -> torch.Tensor:
        """Boolean (len(query_ids), len(image_ids)) relevance; same device as ``query_ids``."""
        return relevance_from_table(self.table(), query_ids, image_ids)


def relevance_from_table(table: torch.Tensor, query_ids: torch.Tensor, image_ids: torch.Tensor) -> torch.Tensor:
    """The relation for id blocks, given :meth:`AttributeCodec.table` (on any device)."""
    device = query_ids.device
    table = table.to(device)
    query_ids = query_ids.to(device)
    image_ids = image_ids.to(device)
    equal = query_ids[:, None] == image_ids[None, :]
    q = table[query_ids]
    i = table[image_ids]
    both_ped = (q[:, 0, None] == 1) & (i[None, :, 0] == 1)
    same_gender = q[:, 1, None] == i[None, :, 1]
    # Inclusion: no position where the query has a 1 and the image a 0.
    query_ones = q[:, 2:].float()
    image_zeros = (1 - i[:, 2:]).float()
    violations = query_ones @ image_zeros.T
    return equal | (both_ped & same_gender & (violations == 0))


def relevance_matrix(
    query_attributes: Sequence[str], image_attributes: Sequence[str], width: int = PEDESTRIAN_ATTRIBUTE_COUNT
) -> torch.Tensor:
    """Boolean (queries, images) matrix of :func:`is_relevant`, computed by tensor operations."""
    codec = AttributeCodec(width)
    query_ids = codec.encode(query_attributes)
    image_ids = codec.encode(image_attributes)
    return codec.matrix(query_ids, image_ids)
