"""``tfcovid demo``: the first thing a newcomer runs, on the built-in chest-CT phantom.

Makes a small phantom store and prints its summary. It uses only the built-in phantom, so it
needs no downloads and no GPU.
"""

from __future__ import annotations

from pathlib import Path

from tfcovid.cli.data_info import format_summary
from tfcovid.data import phantom
from tfcovid.data.store import CaseStore


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="run the demo on the built-in chest-CT phantom",
        description="Make a phantom chest-CT store in OUT and summarise it.")
    parser.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    parser.add_argument("--cases", type=int, default=6, help="phantom cases (default: 6)")
    parser.add_argument("--slices", type=int, default=24, help="slices per case (default: 24)")
    parser.add_argument("--size", type=int, default=192, help="slice size in px (default: 192)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.set_defaults(run=run)


def run(args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store_path = out / "phantom.h5"
    phantom.write_phantom(store_path, num_cases=args.cases, num_slices=args.slices,
                          size=args.size, seed=args.seed, overwrite=True,
                          progress=not args.quiet)
    with CaseStore(store_path) as store:
        print(format_summary(str(store_path), store.summary()))
