"""``tfcovid data``: make, import and inspect HDF5 case stores."""

from __future__ import annotations

from tfcovid.cli import data_import, data_info, data_phantom


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("data", help="make, import and inspect HDF5 case stores",
                                   description="Make, import and inspect HDF5 case stores.")
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    for module in (data_phantom, data_import, data_info):
        module.add_parser(actions)
