"""The ``tfcovid`` command line; each subcommand module has ``add_parser(subparsers)``."""
