"""Screenshot of the dock during a background fine-tune (loss curve visible).

    xvfb-run -a -s "-screen 0 1600x1000x24" python -m training.screenshot [--out docs/refine.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .gui_driver import mask_shown, process_events_until, sample_copy, true_mask


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs/refine.png"))
    args = parser.parse_args(argv)

    import napari

    from napari_hybridseg._qt.dock import MASK_LAYER, HybridSegDock

    viewer = napari.Viewer(title="napari-hybridseg")
    viewer.window._qt_window.resize(1500, 950)
    dock = HybridSegDock(viewer, device="cpu")
    viewer.window.add_dock_widget(dock, name="Label 5 images then refine", area="right")
    dock.open_folder(sample_copy())
    for _ in range(5):  # the user corrects each prediction fully (the sample's true mask), then accepts
        process_events_until(lambda: mask_shown(dock))
        viewer.layers[MASK_LAYER].data = true_mask(dock.key)
        dock.accept()
    process_events_until(lambda: mask_shown(dock))
    process_events_until(lambda: len(dock.loss_plot.steps) >= 6, timeout=600)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(args.out), canvas_only=False)
    print(f"wrote {args.out}")
    dock.close_project()
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
