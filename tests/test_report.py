"""`tfcovid.report`: montage choice and layout, SVG coordinates, and the page, checked by hand."""

import base64
import io
import re

import numpy as np
import pytest
from PIL import Image

from tfcovid import report


def test_montage_slices_ranks_by_infected_lung_then_lung_then_index():
    labels = np.zeros((5, 4, 3), np.uint8)
    lung = np.zeros_like(labels)
    labels[3, :2] = 1        # 6 infected lung voxels
    lung[3] = 1
    labels[1, 0, 0] = 2      # 1
    lung[1, 0, 0] = 1
    lung[0, :1] = 1          # slices 0, 2, 4: no infected lung; lung 3, 6, 6 voxels
    lung[2, :2] = lung[4, :2] = 2
    labels[4, 3] = 1         # 3 voxels labelled outside the lung: not counted
    assert report.montage_slices(labels, lung, count=3) == [1, 2, 3]  # 3, 1, then 2 before 4
    assert report.montage_slices(labels, lung, count=9) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="count=0"):
        report.montage_slices(labels, lung, count=0)


def test_slice_montage_lays_panels_in_rows_with_white_gaps():
    volume = np.full((3, 2, 3), -1000, np.int16)  # window low: black
    labels = np.zeros((3, 2, 3), np.uint8)
    labels[2, 1, 2] = 2
    montage = report.slice_montage(volume, labels, [0, 2], window_hu=(-1000, 0), columns=1,
                                   gap=1)
    # two rows of one 2 x 3 panel with one white row between them: 2 + 1 + 2 rows
    assert montage.shape == (5, 3, 3)
    assert montage[2].tolist() == [[255, 255, 255]] * 3
    assert montage[4, 2].tolist() == [0, 128, 0]  # consolidation on black: 0.5 * 255 rounded
    assert montage[:2].max() == 0 and montage[3:, :2].max() == 0
    padded = report.slice_montage(volume, labels, [0, 1], window_hu=(-1000, 0), columns=3,
                                  gap=1)
    assert padded.shape == (2, 7, 3)  # columns shrink to the panels present: 3 + 1 + 3


def test_ratio_plot_points_are_placed_by_hand():
    svg = report.ratio_plot_svg({"infection": [0.0, 0.2, None, 0.1]}, width=200, height=100)
    # plot area x 56 .. 188, y 12 .. 64; x = 56 + i / 3 * 132; y = 64 - r / 0.2 * 52
    lines = re.findall(r'<polyline points="([^"]+)"', svg)
    assert lines == ["56.0,64.0 100.0,12.0", "188.0,38.0"]
    flat = report.ratio_plot_svg({"ggo": [0.0, 0.0]}, width=200, height=100)
    assert "1.0%" in flat  # the y axis spans at least 1%
    with pytest.raises(ValueError, match="one length"):
        report.ratio_plot_svg({"ggo": [0.1], "consolidation": [0.1, 0.2]})


def summary():
    regions = [{"lung": lung, "zone": zone, "part": part, "lung_voxels": 4,
                "opacified_voxels": 1, "opacified_fraction": 0.25, "score": 1}
               for lung in ("right", "left") for zone in ("upper", "middle", "lower")
               for part in ("anterior", "posterior")]
    named = {"infection": 0.3, "ggo": 0.2, "consolidation": 0.1}
    return {
        "scan": {"path": "scans/<b>odd.nii.gz", "name": "<b>odd", "kind": "nifti",
                 "shape": [2, 2, 3], "spacing_mm": [5.0, 0.7, 0.7]},
        "model": {"run": "runs/x", "name": "infnet_multiclass", "family": "multiclass",
                  "weights": "best"},
        "settings": {"thresholds": [0.01, 0.5], "thresholds_source": "reference"},
        "case": {"ratios": named, "lungs": {"right": named, "left": {**named, "ggo": None}},
                 "severity_class": 1, "severity_name": "severe"},
        "ct_severity_score": {"total": 12, "max": 24, "regions": regions},
        "slices": [{"ratios": named}, {"ratios": {name: None for name in named}}],
    }


def test_page_embeds_montage_plot_and_summary():
    montage = np.zeros((2, 3, 3), np.uint8)
    montage[1, 2] = (255, 0, 0)
    page = report.render_report(summary(), montage, [0, 1])
    assert "&lt;b&gt;odd" in page and "<b>odd" not in page  # the scan name is escaped
    assert "Severity class <b>1 (severe)</b>" in page and "<b>12 / 24</b>" in page
    assert "<p>Reference thresholds (0.01, 0.5) on the infected fraction" in page
    fitted = summary()
    fitted["settings"] = {"thresholds": [0.0747453, 0.3], "thresholds_source": "fitted"}
    assert "<p>Fitted thresholds (0.07475, 0.3) on" in report.render_report(
        fitted, montage, [0, 1])
    assert page.count("<td>25.0%</td><td>1</td></tr>") == 12  # every region row
    assert "<td>30.0%</td><td>30.0%</td><td>30.0%</td>" in page  # infection: case, right, left
    assert "<td>20.0%</td><td>20.0%</td><td>n/a</td>" in page  # ggo, left lung undefined
    assert page.count("<svg") == 1 and page.count("<polyline") == 3  # one point per class
    encoded = page.split('src="data:image/png;base64,')[1].split('"')[0]
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded))))
    np.testing.assert_array_equal(decoded, montage)
