"""``tfcovid data info FILE.h5``: what a store holds."""

from __future__ import annotations

import json

from tfcovid.data.store import CaseStore


def add_parser(actions) -> None:
    parser = actions.add_parser(
        "info", help="summarise a store: cases, slices, label histogram, severity counts",
        description="Summarise a store: cases, slices, label histogram, severity counts.")
    parser.add_argument("store", metavar="FILE.h5", help="store written by tfcovid data")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(run=run)


def format_summary(path: str, summary: dict) -> str:
    """Renders ``CaseStore.summary()`` as an aligned text report."""
    lines = [f"store       {path}",
             f"intensity   {summary['intensity']}",
             f"cases       {summary['cases']} ({summary['labelled_cases']} labelled, "
             f"{summary['unlabelled_cases']} unlabelled)",
             f"slices      {summary['slices']}"]
    if summary["image_range"] is not None:
        unit = "HU" if summary["intensity"] == "hu" else "grey levels"
        lines.append(f"image range {summary['image_range'][0]} .. {summary['image_range'][1]} "
                     f"{unit}")
    total = sum(summary["label_pixels"].values())
    lines.append("label histogram (labelled cases)")
    lines.append(f"  {'class':<22}{'pixels':>14}{'fraction':>10}{'slices':>9}")
    for index, (name, count) in enumerate(summary["label_pixels"].items()):
        fraction = count / total if total else 0.0
        lines.append(f"  {index} {name:<20}{count:>14,}{fraction:>10.4f}"
                     f"{summary['slices_with_class'][name]:>9}")
    lines.append("severity (cases)")
    for index, (name, count) in enumerate(summary["severity_cases"].items()):
        prefix = f"{index} " if name != "unknown" else "  "
        lines.append(f"  {prefix}{name:<20}{count:>6}")
    return "\n".join(lines)


def run(args) -> None:
    with CaseStore(args.store) as store:
        summary = store.summary()
    print(json.dumps(summary, indent=2) if args.json else format_summary(args.store, summary))
