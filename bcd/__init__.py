"""`bcd`, the tool around the stages: the local runner, ingest, models and benchmarks.

It imports `stages` (the image payload); `stages` never imports it.
"""
