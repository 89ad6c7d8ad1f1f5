"""Data stage: demo generation, fetching, extraction, conversion to canonical forms, reports."""
