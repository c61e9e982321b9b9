"""``tfcovid data import KIND SRC --out FILE.h5``: a public data set into a new store.

Each KIND (``tfcovid.data.importers.IMPORTERS``) is a sub-command with its own options, e.g.
``tfcovid data import medseg medseg/ --out medseg.h5 --effusion-label 0``. The store appears
only when every case was read; the command then prints its summary as ``tfcovid data info``.
"""

from __future__ import annotations

import argparse

from tfcovid.cli.data_info import format_summary
from tfcovid.data.importers import IMPORTERS, import_dataset


def _label_pair(text: str) -> tuple[int, int]:
    try:
        source, target = (int(value) for value in text.split("="))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected FROM=TO, two integers such as 3=0; got "
                                         f"{text!r}") from None
    if target not in (0, 1, 2):
        raise argparse.ArgumentTypeError(f"target label must be 0, 1 or 2; got {text!r}")
    return source, target


class _LabelMapAction(argparse.Action):
    """Collects repeated ``--label-map FROM=TO`` into one dict."""

    def __call__(self, parser, namespace, values, option_string=None):
        source, target = values
        setattr(namespace, self.dest, {**(getattr(namespace, self.dest) or {}), source: target})


def _medseg_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--effusion-label", type=int, choices=(0, 1, 2), default=0,
                        help="store label for pleural effusion (MedSeg label 3): 0 background "
                             "(default), 1 GGO, 2 consolidation")


def _semiseg_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-unlabelled", dest="include_unlabelled", action="store_false",
                        help="skip the 1600 unlabelled Pseudo-label slices")
    parser.add_argument("--split", default="train",
                        help="split name for a plain Imgs/ + GT/ folder (default: train)")


def _ictcf_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--csv", metavar="FILE.csv",
                        help="clinical CSV (default: the only *.csv in SRC)")
    parser.add_argument("--id-column", metavar="NAME", help="header of the patient column")
    parser.add_argument("--severity-column", metavar="NAME",
                        help="header of the severity (morbidity) column")


def _nifti_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mask", metavar="MASK",
                        help="infection mask file (or folder of masks named like the images)")
    parser.add_argument("--label-map", metavar="FROM=TO", type=_label_pair,
                        action=_LabelMapAction, help="map a mask value to a store label, e.g. "
                                                     "3=0; repeat for several")


_OPTIONS = {"ictcf": _ictcf_options, "medseg": _medseg_options, "nifti": _nifti_options,
            "semiseg": _semiseg_options}


def add_parser(actions) -> None:
    parser = actions.add_parser("import", help="import a public data set into a new store",
                                description="Import a public data set into a new HDF5 store.")
    kinds = parser.add_subparsers(dest="import_kind", metavar="KIND", required=True)
    for name, importer in sorted(IMPORTERS.items()):
        kind_parser = kinds.add_parser(name, help=importer.description,
                                       description=f"Import {importer.description} into a "
                                                   f"'{importer.intensity}' store.")
        kind_parser.add_argument("src", metavar="SRC", help="the data set's file or folder")
        kind_parser.add_argument("--out", metavar="FILE.h5", required=True,
                                 help="store to write; must not exist unless --overwrite")
        kind_parser.add_argument("--overwrite", action="store_true",
                                 help="replace an existing store")
        if name in _OPTIONS:
            _OPTIONS[name](kind_parser)
        kind_parser.set_defaults(run=run)


def run(args) -> None:
    options = {name: getattr(args, name) for name in IMPORTERS[args.import_kind].options()}
    summary = import_dataset(args.import_kind, args.src, args.out, overwrite=args.overwrite,
                             progress=not args.quiet, **options)
    print(format_summary(args.out, summary))
