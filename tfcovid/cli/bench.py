"""``tfcovid bench``: speed and memory of a model's inference, training step, input pipeline
or ``tfcovid predict`` on a phantom volume; ``--cost-table``: seconds per training epoch of
FCN8, multi SInfNet and multi SSInfNet.

Prints the figures of `tfcovid.bench.benchmark` (or `tfcovid.bench.cost_table`) as a table;
``--json PATH`` writes them as one JSON object. Example::

    tfcovid bench --model infnet --mode infer --batch 8 --size 352 --repeat 10
    tfcovid bench --model infnet --mode train --batch 4 --precision mixed_bfloat16 --xla
    tfcovid bench --mode predict --slices 300 --size 512 --repeat 1 --warmup 0
    tfcovid bench --cost-table --size 352 --batch 4 --json cost.json
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tfcovid.cli.predict import BATCHES_AT_ONCE

# tfcovid.bench's choices, spelled out: importing it loads TensorFlow.
MODELS = ("infnet", "multi_infnet", "unet", "fcn8", "ssinfnet", "stichnet")
MODES = ("infer", "train", "pipeline", "predict")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench", help="measure inference, training, input-pipeline or predict speed",
        description="Time a model's inference, one training step, the tf.data pipeline, or "
                    "tfcovid predict on a phantom volume: warm-up excluded, median and spread "
                    "over repeats, images/second, seconds/image, peak memory, traces, device, "
                    "TensorFlow version and threads; or print the training cost table.")
    parser.add_argument("--model", choices=MODELS, default="infnet",
                        help="model (default: infnet)")
    parser.add_argument("--mode", choices=MODES, default="infer", help="what to time "
                        "(default: infer)")
    parser.add_argument("--batch", type=int, default=8, help="images per call (default: 8)")
    parser.add_argument("--size", type=int, help="input side in px; predict mode: the "
                        "volume's side (default: 352; predict mode 512)")
    parser.add_argument("--precision", choices=PRECISIONS, default="float32",
                        help="Keras dtype policy (default: float32)")
    parser.add_argument("--xla", action="store_true", help="XLA-compile the timed function")
    parser.add_argument("--repeat", type=int, default=10, help="timed calls (default: 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls (default: 2)")
    parser.add_argument("--tiny", action="store_true", help="the model's tiny setting")
    parser.add_argument("--no-augment", dest="augment", action="store_false",
                        help="pipeline mode: without augmentation")
    parser.add_argument("--input-bound", action="store_true", help="train mode: also time "
                        "the input pipeline and report its share of a step")
    parser.add_argument("--recompute", action="store_true", help="train mode: recompute "
                        "the backbone's activations in the backward pass (less memory)")
    parser.add_argument("--slices", type=int, default=300,
                        help="predict mode: slices of the phantom volume (default: 300)")
    parser.add_argument("--network-size", type=int, default=352, help="predict mode without "
                        "--run: input side of the untrained network in px (default: 352)")
    parser.add_argument("--batches-at-once", type=int, default=BATCHES_AT_ONCE,
                        help="predict mode: slice batches run at once on threads (default: "
                             f"{BATCHES_AT_ONCE}, as tfcovid predict)")
    parser.add_argument("--run", dest="run_dir", metavar="RUN_DIR",
                        help="predict mode: a trained run folder (default: the untrained model)")
    parser.add_argument("--cost-table", action="store_true", help="seconds per training epoch "
                        "of FCN8, multi SInfNet and multi SSInfNet (with --size, --batch, "
                        "--images, --repeat, --warmup, --tiny)")
    parser.add_argument("--images", type=int, default=50,
                        help="cost table: images per epoch (default: 50)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.set_defaults(run=run)


def format_figures(figures: dict) -> str:
    """The printed table: one "name  value" line per figure."""
    rows = [("model", figures["model"]), ("mode", figures["mode"]),
            ("batch x size", f"{figures['batch']} x {figures['size']} px"),
            ("precision", figures["precision"] + (" + XLA" if figures["xla"] else "")
             + (", backbone recomputed" if figures.get("recompute") else "")),
            ("seconds/image", f"{figures['seconds_per_image']:.4f} (median of "
                              f"{figures['repeat']}; min {figures['seconds_per_image_min']:.4f}"
                              f", max {figures['seconds_per_image_max']:.4f})"),
            ("images/second", f"{figures['images_per_second']:.2f}"),
            ("traces", "n/a" if figures["traces"] is None else figures["traces"]),
            ("peak memory", f"{figures['peak_memory_mb']:.0f} MB"),
            ("device", figures["device"]),
            ("tensorflow", f"{figures['tensorflow']} (threads: intra "
                           f"{figures['intra_op_threads']}, inter {figures['inter_op_threads']};"
                           f" 0 = all cores)")]
    if figures.get("malloc_arena_max") is not None:
        rows.append(("malloc arenas", figures["malloc_arena_max"]))
    if figures.get("numpy_madvise_hugepage") is not None:
        rows.append(("numpy hugepage", figures["numpy_madvise_hugepage"]))
    if "input_bound_fraction" in figures:
        fraction = figures["input_bound_fraction"]
        verdict = "the bottleneck" if fraction > 1 else "not the bottleneck"
        rows.append(("input pipeline", f"{figures['input_seconds_per_batch']:.4f} s/batch, "
                                       f"{fraction:.2f} of a step ({verdict})"))
    if "stage_seconds" in figures:
        rows[2] = ("volume", f"{figures['slices']} x {figures['size']} x {figures['size']} px, "
                             f"{figures['batch']} slices per pass, "
                             f"{figures['batches_at_once']} at once, network "
                             f"{figures['network_size']} px")
        rows.insert(5, ("seconds/volume", f"{figures['seconds_per_volume']:.2f}"))
        rows.extend((f"  {stage}", f"{seconds:.3f} s")
                    for stage, seconds in figures["stage_seconds"].items())
    return "\n".join(f"{name:15s} {value}" for name, value in rows)


def format_cost_table(table: dict) -> str:
    """The printed cost table: one row per model, seconds per epoch and relative cost."""
    lines = [f"seconds per training epoch ({table['steps_per_epoch']} steps of "
             f"{table['batch']} images at {table['size']} px; {table['device']})",
             f"{'model':30s} {'s/epoch':>9s} {'relative':>9s}"]
    lines.extend(f"{name:30s} {seconds:9.2f} {table['relative'][name]:9.3f}"
                 for name, seconds in table["seconds_per_epoch"].items())
    return "\n".join(lines)


def run(args) -> None:
    # Imported here so that `tfcovid --help` does not load TensorFlow.
    from tfcovid import bench
    from tfcovid.errors import ConfigError

    size = args.size or (512 if args.mode == "predict" and not args.cost_table else 352)
    if args.cost_table:
        if min(args.images, args.batch, args.repeat, args.warmup) < 1 or size < 32:
            raise ConfigError(f"--cost-table: needs --images, --batch, --repeat, --warmup >= 1 "
                              f"and --size >= 32; got {args.images}, {args.batch}, "
                              f"{args.repeat}, {args.warmup}, {size}")
        figures = bench.cost_table(size=size, batch=args.batch, images=args.images,
                                   repeat=args.repeat, warmup=args.warmup, tiny=args.tiny)
        text = format_cost_table(figures)
    else:
        try:
            settings = bench.BenchSettings(
                model=args.model, mode=args.mode, batch=args.batch, size=size,
                precision=args.precision, xla=args.xla, repeat=args.repeat,
                warmup=args.warmup, tiny=args.tiny, augment=args.augment,
                input_bound=args.input_bound, recompute=args.recompute, slices=args.slices,
                network_size=args.network_size, run_dir=args.run_dir,
                batches_at_once=args.batches_at_once)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        figures = bench.benchmark(settings)
        text = format_figures(figures)
    if args.json is not None:
        path = Path(args.json)
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(json.dumps(figures, indent=2) + "\n")
        os.replace(temporary, path)
    print(text)
