"""`bcd bench`: measured speed and memory of the stages, beside the NYU reference.

Modules, in the order a bench run uses them:

- `machine`    what runs the bench (CPU, cores, torch) and its matmul peak (fp32, bf16).
- `exams`      the exams measured: full-size synthetic ones, copies for the scaling runs,
               a small one for `--quick`.
- `processes`  one command in a fresh child process: wall time and peak RSS.
- `ours`       our stages, one exam, one child process per stage.
- `network`    the patch DenseNet alone: FLOPs per patch, patches/s, GFLOP/s.
- `backends`   torch against OpenVINO: the network alone on each, and generate_heatmaps
               on each beside a busy process (the busy-CPU row).
- `deviation`  how far a fast-mode (bf16) run lands from the exact one.
- `reference`  the NYU reference's own scripts on the same exam and weights.
- `scaling`    `bcd run` over 1..N exams, one worker against two.
- `report`     the stdout table and the JSON document.
"""
