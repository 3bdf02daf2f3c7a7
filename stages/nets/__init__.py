"""The networks: the patch classifier (DenseNet-121), the view-split classifier (ResNet-22),
their checkpoints (safe loading, provenance) and seeded stand-in weights."""
