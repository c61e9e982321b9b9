"""The HTML severity report of one scan: one self-contained page, no scripts, no matplotlib.

The page (`render_report`) shows, from the summary `tfcovid.predict.predict_scan` writes as
``severity.json``:

- the severity summary: infected fraction of lung per class for the case and each lung, the
  severity class and the CT severity score, then the score of each region;
- a slice montage (`slice_montage`), a PNG embedded as base64: the slices with most infection
  in the run's HU window, ground-glass opacity (infection for single-class runs) in red,
  consolidation in green (`tfcovid.visualize.overlay`);
- the infected fraction of lung per slice, an inline SVG line plot (`ratio_plot_svg`).

Example:

>>> svg = ratio_plot_svg({"infection": [0.0, 0.2, None, 0.1]}, width=200, height=100)
>>> svg.count("<polyline"), "0.0% .. 20.0%" in svg
(2, True)
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence

import numpy as np

from tfcovid import visualize

MONTAGE_SLICES = 6
MONTAGE_COLUMNS = 3
SERIES_COLOURS = {"infection": "#222222", "ggo": "#d62728", "consolidation": "#2ca02c"}
SERIES_TITLES = {"infection": "infection", "ggo": "ground-glass opacity",
                 "consolidation": "consolidation"}
_MARGIN = {"left": 56, "right": 12, "top": 12, "bottom": 36}  # px around the plot area


def montage_slices(labels: np.ndarray, lung: np.ndarray, count: int = MONTAGE_SLICES
                   ) -> list[int]:
    """The ``count`` slices with most infected lung voxels (then most lung voxels, then
    first), in slice order; labels outside the lung do not count.

    Args:
        labels: int array (slices, rows, columns): 0 background, 1 and 2 infection classes.
        lung: int array of the same shape: nonzero inside the lungs.
        count: int >= 1. Defaults to 6.

    Returns:
        list of at most ``count`` slice indices, ascending.

    Raises:
        ValueError: ``count`` < 1, or shapes that differ or are not 3-D.
    """
    labels, lung = np.asarray(labels), np.asarray(lung)
    if count < 1:
        raise ValueError(f"count must be 1 or more. Received: count={count}")
    if labels.ndim != 3 or labels.shape != lung.shape:
        raise ValueError(f"labels and lung must be (slices, rows, columns) of one shape. "
                         f"Received: {labels.shape}, {lung.shape}")
    infected = np.count_nonzero((labels != 0) & (lung != 0), axis=(1, 2))
    lung_voxels = np.count_nonzero(lung, axis=(1, 2))
    order = np.lexsort((np.arange(labels.shape[0]), -lung_voxels, -infected))
    return sorted(int(index) for index in order[:count])


def slice_montage(volume_hu: np.ndarray, labels: np.ndarray, indices: Sequence[int],
                  window_hu: tuple[float, float], columns: int = MONTAGE_COLUMNS,
                  gap: int = visualize.GAP) -> np.ndarray:
    """Overlays of the chosen slices in a grid, row by row, white ``gap`` px between them.

    Args:
        volume_hu: array (slices, rows, columns) in HU.
        labels: int array of the same shape: 0 background, 1 ground-glass opacity (or
            infection), 2 consolidation.
        indices: slices to show, in reading order.
        window_hu: (low, high) HU shown black to white.
        columns: int >= 1. Panels per montage row. Defaults to 3.
        gap: int >= 0. Px between panels. Defaults to 4.

    Returns:
        uint8 (montage rows, montage columns, 3); empty panels at the end are white.

    Raises:
        ValueError: no ``indices``, ``columns`` < 1, or as `tfcovid.visualize.overlay`.
    """
    if not len(indices) or columns < 1:
        raise ValueError(f"indices must be non-empty and columns 1 or more. Received: "
                         f"indices={list(indices)}, columns={columns}")
    panels = [visualize.overlay(volume_hu[index], labels[index], window_hu=window_hu)
              for index in indices]
    columns = min(columns, len(panels))
    blank = np.full_like(panels[0], 255)
    panels += [blank] * (-len(panels) % columns)
    rows = [visualize.side_by_side(panels[start:start + columns], gap)
            for start in range(0, len(panels), columns)]
    spacer = np.full((gap, rows[0].shape[1], 3), 255, np.uint8)
    return np.concatenate([part for row in rows for part in (spacer, row)][1:], axis=0)


def png_data_uri(rgb: np.ndarray) -> str:
    """A uint8 (height, width, 3) image as a ``data:image/png;base64,...`` URI."""
    from PIL import Image

    buffer = io.BytesIO()
    # zlib level 3, not Pillow's 6: a report's 1544 x 1028 montage in 0.12 s instead of 0.34,
    # and no larger (1.23 against 1.24 MB)
    Image.fromarray(np.asarray(rgb, np.uint8)).save(buffer, format="PNG", compress_level=3)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def ratio_plot_svg(series: Mapping[str, Sequence[float | None]], width: int = 640,
                   height: int = 240) -> str:
    """Infected fraction of lung per slice as an SVG line plot.

    The x axis runs over slice indices 0 .. n - 1, the y axis from 0 to the largest ratio (at
    least 1%); a slice without lung (None or NaN) breaks the line, so each unbroken run is
    one ``<polyline>``. The y range is written as the axis title, e.g. "0.0% .. 20.0%".

    Args:
        series: class name ("infection", "ggo", "consolidation") to per-slice ratios in
            [0, 1], all of one length.
        width: int. SVG width in px. Defaults to 640.
        height: int. SVG height in px. Defaults to 240.

    Returns:
        the ``<svg>`` element as text.

    Raises:
        ValueError: no series, or series of different or zero length.
    """
    lengths = {len(values) for values in series.values()}
    if len(lengths) != 1 or 0 in lengths:
        raise ValueError(f"series must be non-empty and of one length. Received: lengths "
                         f"{sorted(lengths)}")
    count = lengths.pop()
    arrays = {name: np.array([np.nan if value is None else value for value in values],
                             np.float64) for name, values in series.items()}
    top_ratio = max([0.01] + [float(np.nanmax(values)) for values in arrays.values()
                              if not np.isnan(values).all()])
    left, right = _MARGIN["left"], width - _MARGIN["right"]
    top, bottom = _MARGIN["top"], height - _MARGIN["bottom"]

    def point(index, value):
        x = left + index / max(count - 1, 1) * (right - left)
        return f"{x:.1f},{bottom - value / top_ratio * (bottom - top):.1f}"

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="infected fraction of lung per slice">',
             f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" '
             f'fill="none" stroke="#999"/>',
             f'<text x="{left - 4}" y="{top + 10}" text-anchor="end" font-size="11">'
             f'{100 * top_ratio:.1f}%</text>',
             f'<text x="{left - 4}" y="{bottom}" text-anchor="end" font-size="11">0%</text>',
             f'<text x="{left}" y="{bottom + 14}" font-size="11">0</text>',
             f'<text x="{right}" y="{bottom + 14}" text-anchor="end" font-size="11">'
             f'{count - 1}</text>',
             f'<text x="{(left + right) / 2:.0f}" y="{height - 4}" text-anchor="middle" '
             f'font-size="11">slice (inferior to superior); infected fraction of lung '
             f'{0:.1f}% .. {100 * top_ratio:.1f}%</text>']
    for name, values in arrays.items():
        colour = SERIES_COLOURS.get(name, "#1f77b4")
        defined = np.concatenate([[False], ~np.isnan(values), [False]])
        starts = np.flatnonzero(defined[1:] & ~defined[:-1])
        stops = np.flatnonzero(~defined[1:] & defined[:-1])
        for start, stop in zip(starts, stops):
            points = " ".join(point(index, values[index]) for index in range(start, stop))
            parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" '
                         f'stroke-width="1.5"><title>{html.escape(name)}</title></polyline>')
    parts.append("</svg>")
    return "\n".join(parts)


def _thresholds(settings: dict) -> str:
    """"Fitted thresholds (low, high)" (``tfcovid severity fit``) or "Reference thresholds ..."."""
    low, high = settings["thresholds"]
    source = "Fitted" if settings["thresholds_source"] == "fitted" else "Reference"
    return f"{source} thresholds ({low:.4g}, {high:.4g})"


def render_report(summary: Mapping, montage: np.ndarray, montage_indices: Sequence[int]) -> str:
    """The HTML page of one scan.

    Args:
        summary: the dict `tfcovid.predict.predict_scan` returns (``severity.json``).
        montage: uint8 (height, width, 3), from `slice_montage`.
        montage_indices: the slices it shows, in order.

    Returns:
        the HTML document as text, with the montage and the plot inline.
    """
    scan, model, case = summary["scan"], summary["model"], summary["case"]
    score = summary["ct_severity_score"]
    names = list(case["ratios"])
    series = {name: [entry["ratios"][name] for entry in summary["slices"]] for name in names}
    rows = "".join(
        f"<tr><th>{html.escape(SERIES_TITLES.get(name, name))}</th>"
        f"<td>{_percent(case['ratios'][name])}</td>"
        f"<td>{_percent(case['lungs']['right'][name])}</td>"
        f"<td>{_percent(case['lungs']['left'][name])}</td></tr>" for name in names)
    regions = "".join(
        f"<tr><td>{region['lung']}</td><td>{region['zone']}</td><td>{region['part']}</td>"
        f"<td>{_percent(region['opacified_fraction'])}</td><td>{region['score']}</td></tr>"
        for region in score["regions"])
    title = html.escape(f"tfcovid severity report: {scan['name']}")
    spacing = " x ".join(f"{value:g}" for value in scan["spacing_mm"])
    slices = ", ".join(str(index) for index in montage_indices)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1em; }}
th, td {{ border: 1px solid #bbb; padding: 0.2em 0.6em; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
.severity {{ font-size: 1.3em; }}
img {{ max-width: 100%; }}
</style></head>
<body>
<h1>{title}</h1>
<p>Scan {html.escape(scan['path'])} ({scan['kind']}, {' x '.join(map(str, scan['shape']))}
voxels of {spacing} mm); model {html.escape(model['name'])} ({model['family']},
{model['weights']} weights) from {html.escape(model['run'])}.</p>
<h2>Severity</h2>
<p class="severity">Severity class <b>{case['severity_class']} ({case['severity_name']})</b>;
CT severity score <b>{score['total']} / {score['max']}</b></p>
<table><tr><th>infected fraction of lung</th><th>both lungs</th><th>right lung</th>
<th>left lung</th></tr>{rows}</table>
<p>{_thresholds(summary['settings'])} on the infected fraction of lung (classes 0 mild,
1 severe, 2 critical). The CT severity score sums 12 regions (3 zones x anterior/posterior per
lung), each 0 (no opacity), 1 (under 50% opacified) or 2 (50% or more), an approximation of the
20-region score.</p>
<table><tr><th>lung</th><th>zone</th><th>part</th><th>opacified</th><th>score</th></tr>
{regions}</table>
<h2>Slices with most infection</h2>
<p>Slices {slices} (0 is the most inferior); red: ground-glass opacity (infection for
single-class models), green: consolidation.</p>
<img alt="slice montage" src="{png_data_uri(montage)}">
<h2>Infected fraction of lung per slice</h2>
{ratio_plot_svg(series)}
<p>{', '.join(f'<span style="color:{SERIES_COLOURS.get(name, "#1f77b4")}">'
              f'{html.escape(SERIES_TITLES.get(name, name))}</span>' for name in names)}</p>
</body></html>
"""


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"
