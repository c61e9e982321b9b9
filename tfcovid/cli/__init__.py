"""The ``tfcovid`` command line; each subcommand module has ``add_parser(subparsers)``."""

import os

# TensorFlow's C++ start-up chatter (oneDNN, CUDA probing) hides the lines users need to read;
# set before any subcommand module can import TensorFlow.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
