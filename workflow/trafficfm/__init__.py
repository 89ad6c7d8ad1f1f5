"""trafficfm: data, models and submissions for the VIMER traffic-scene challenge (AllInOne and retrieval)."""

__version__ = "0.1.0"
