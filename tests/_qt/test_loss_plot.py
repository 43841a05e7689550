"""The live loss curve keeps its axes still: x spans the refinement's steps, y grows only when a loss leaves it."""

import pytest

from napari_hybridseg._qt.loss_plot import LossPlot


@pytest.fixture
def plot(qtbot):
    widget = LossPlot()
    qtbot.addWidget(widget)
    widget.clear(total_steps=100)
    return widget


def test_the_x_axis_spans_the_announced_steps_from_the_start(plot):
    assert plot.plot.viewRange()[0] == pytest.approx([0, 100])
    plot.add(10, 0.9)
    assert plot.plot.viewRange()[0] == pytest.approx([0, 100])


def test_the_y_axis_holds_still_while_the_loss_falls_and_grows_when_it_rises(plot):
    plot.add(10, 0.9)
    first = plot.plot.viewRange()[1]
    assert first[0] <= 0 and first[1] >= 0.9
    for step, loss in ((20, 0.7), (30, 0.5), (40, 0.6)):
        plot.add(step, loss)
        assert plot.plot.viewRange()[1] == pytest.approx(first)
    plot.add(50, 2.0)
    low, high = plot.plot.viewRange()[1]
    assert low <= 0 and high >= 2.0
    assert plot.steps == [10, 20, 30, 40, 50]


def test_more_steps_than_announced_widen_the_x_axis(plot):
    plot.add(150, 0.4)
    assert plot.plot.viewRange()[0][1] >= 150
