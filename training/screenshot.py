"""Screenshot of the dock during a background fine-tune (loss curve visible).

    xvfb-run -a -s "-screen 0 1600x1000x24" python -m training.screenshot [--out docs/refine.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .gui_driver import dock_on_sample, mask_shown, process_events_until, true_mask


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs/refine.png"))
    args = parser.parse_args(argv)

    from napari_hybridseg._qt.dock import MASK_LAYER

    viewer, dock = dock_on_sample(name="Label 5 images then refine")
    viewer.window._qt_window.resize(1500, 950)
    for _ in range(5):  # the user corrects each prediction fully (the sample's true mask), then accepts
        process_events_until(lambda: mask_shown(dock))
        viewer.layers[MASK_LAYER].data = true_mask(dock.key)
        dock.accept()
    process_events_until(lambda: mask_shown(dock))
    process_events_until(lambda: len(dock.refinement.loss_plot.steps) >= 6, timeout=600)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(args.out), canvas_only=False)
    print(f"wrote {args.out}")
    dock.close_project()
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
