"""The classifier's windows per epoch: cut ahead on threads (as on an accelerator) or
inline (as on the CPU), the same bits in the same order."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from stages.core.exam import VIEWS
from stages.core.windows import draw_epochs, sample_view_input
from stages.nets.exam_scoring import cut_epochs


def test_windows_cut_ahead_on_threads_are_the_inline_ones():
    rng = np.random.default_rng(3)
    views = {
        view: [rng.random((700 + 50 * i, 520, 3), dtype=np.float32) for i in range(2)]
        for view in VIEWS
    }
    centres = {view: [(350, 260), (380, 200)] for view in VIEWS}
    shapes = {view: [image.shape for image in images] for view, images in views.items()}
    plan = draw_epochs(shapes, centres, 2, True, seed=0)
    inline = list(cut_epochs(views, plan, None))
    with ThreadPoolExecutor(max_workers=len(VIEWS)) as cutter:
        ahead = list(cut_epochs(views, plan, cutter))
    # What the reference's loop gives: one stream, view by view, epoch by epoch.
    stream = np.random.RandomState(0)
    assert len(inline) == len(ahead) == 2
    for inline_epoch, ahead_epoch in zip(inline, ahead, strict=True):
        assert list(inline_epoch) == list(ahead_epoch) == list(VIEWS)
        for view in VIEWS:
            index = stream.randint(0, 2)
            centre = centres[view][index]
            expected = sample_view_input(views[view][index], view, centre, stream, True)
            assert inline_epoch[view].shape == (1, 3, *expected.shape[1:])
            assert torch.equal(inline_epoch[view][0], torch.from_numpy(expected))
            assert torch.equal(ahead_epoch[view], inline_epoch[view])
