"""Human-readable outputs: heatmap overlays and self-contained HTML reports."""
