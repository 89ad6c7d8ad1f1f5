"""Class lists of the challenge's datasets, as the organisers define them.

One place for every name and id: the demo generator, the converters, the models and the
submission writer all import from here (and the config may override them for a later edition).
"""

# TT100K traffic-sign categories used by the AllInOne track, in id order (ids 0..44).
TT100K_CATEGORIES = (
    "i2 i4 i5 il100 il60 il80 io ip p10 p11 p12 p19 p23 p26 p27 p3 p5 p6 pg ph4 ph4.5 ph5 pl100 "
    "pl120 pl20 pl30 pl40 pl5 pl50 pl60 pl70 pl80 pm20 pm30 pm55 pn pne po pr40 w13 w32 w55 w57 w59 "
    "wo"
).split()
assert len(TT100K_CATEGORIES) == 45

# BDD100K / Cityscapes semantic classes in train-id order (ids 0..18); 255 = ignore.
BDD100K_CLASSES = (
    "road",
    "sidewalk",
    "building",
    "wall",
    "fence",
    "pole",
    "traffic light",
    "traffic sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "rider",
    "car",
    "truck",
    "bus",
    "train",
    "motorcycle",
    "bicycle",
)
IGNORE_INDEX = 255

# Retrieval track: vehicle types as the organisers name them.
VEHICLE_TYPES = ("Bus", "Microbus", "Minivan", "SUV", "Sedan", "Truck")
PEDESTRIAN_ATTRIBUTE_COUNT = 21
