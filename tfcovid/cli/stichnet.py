"""``tfcovid stichnet train|styles``: StichNet's semi-supervised training and its style images.

``train CONFIG.yaml|NAME [--set key=value ...] [--workdir DIR]`` trains StichNet
(`tfcovid.training.stichnet.train`), resuming from the workdir's last checkpoint; its run
folder is laid out as any run, so ``tfcovid evaluate --model DIR`` scores it.

``styles --model DIR (--image FILE.png | --store FILE.h5 --case ID --slice N) --out GRID.png``
renders one slice as a PNG grid, left to right: the input, the predicted labels (red
ground-glass opacity, green consolidation), the uncertainty (per-pixel entropy over
``stichnet.uncertainty_samples`` latent samples, black 0 to white log 3) and the four style
images b, h, g, c ("this slice if every pixel were background / healthy lung / GGO /
consolidation", spec 12). A PNG is read as grey levels / 255 (windowed CT); a store slice is
windowed as the run's data settings. The slice is resized to the run's ``data.image_size``
and each panel is enlarged ``--zoom`` times. Example::

    tfcovid data phantom --out stichnet_tiny.h5 --cases 4 --slices 4 --size 64 --unlabelled 1
    tfcovid stichnet train stichnet_phantom_tiny --workdir runs/stichnet_tiny
    tfcovid stichnet styles --model runs/stichnet_tiny --store stichnet_tiny.h5 --case \\
        phantom_000 --slice 2 --out styles.png
"""

from __future__ import annotations

from tfcovid.cli import train as train_cli

WEIGHTS = ("best", "final")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "stichnet", help="StichNet: semi-supervised ladder-VAE training and style images",
        description="StichNet, the semi-supervised hierarchical ladder VAE: train it, or "
                    "render a slice's style images.")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    train = actions.add_parser("train", help="train StichNet from an experiment config",
                               description="Train StichNet on labelled and unlabelled "
                                           "slices; resumes from the workdir's last checkpoint.")
    train_cli.add_experiment_arguments(train)
    train.set_defaults(run=run_train)
    styles = actions.add_parser("styles", help="write a slice's style images as a PNG grid",
                                description="Write input | labels | uncertainty | b | h | g | "
                                            "c style images of one slice as a PNG grid.")
    styles.add_argument("--model", required=True, metavar="RUN_DIR",
                        help="workdir of a finished StichNet run")
    styles.add_argument("--image", metavar="FILE.png", help="a grey PNG slice")
    styles.add_argument("--store", metavar="FILE.h5", help="a store holding the slice")
    styles.add_argument("--case", help="case id in --store")
    styles.add_argument("--slice", type=int, default=0, help="slice index in the case")
    styles.add_argument("--out", required=True, metavar="GRID.png", help="PNG to write")
    styles.add_argument("--weights", choices=WEIGHTS, default="best",
                        help="best validation epoch or final network (default: best)")
    styles.add_argument("--zoom", type=int, default=2, help="panel enlargement (default: 2)")
    styles.set_defaults(run=run_styles)


def run_train(args) -> None:
    # Imported here so that `tfcovid --help` does not load TensorFlow.
    from tfcovid import config
    from tfcovid.training import stichnet

    experiment = config.load_experiment(args.config, args.overrides)
    workdir = args.workdir if args.workdir is not None else experiment.workdir
    final = stichnet.train(experiment, workdir, progress=not args.quiet)
    print(train_cli.format_summary(str(workdir), final))


def run_styles(args) -> None:
    import numpy as np
    import tensorflow as tf

    from tfcovid import inference, visualize
    from tfcovid.errors import ConfigError
    from tfcovid.models.stichnet import prediction

    if (args.image is None) == (args.store is None) or (args.store and args.case is None):
        raise ConfigError("--image / --store: give either --image FILE.png or --store FILE.h5 "
                          "with --case (and --slice)")
    if args.zoom < 1:
        raise ConfigError(f"--zoom {args.zoom}: must be >= 1")
    run = inference.load_run(args.model, args.weights)
    if run.experiment.model.name != "stichnet":
        raise ConfigError(f"--model {args.model}: a {run.experiment.model.name} run; styles "
                          f"needs a StichNet run")
    unit = read_png(args.image) if args.image else read_store_slice(
        args.store, args.case, args.slice, run.experiment.data)
    image = tf.image.resize(unit[None, ..., None], run.experiment.data.image_size)
    outputs = run.network(image, training=False)
    labels = tf.argmax(outputs["logits"], axis=-1)[0].numpy()
    samples = max(1, run.experiment.stichnet.uncertainty_samples)
    entropy = prediction.predict_uncertainty(run.network, image, samples, patch_size=None)
    styles = outputs["styles"][0].numpy()
    shown = image[0, ..., 0].numpy()
    panels = [visualize.grey(shown), visualize.overlay(shown, labels),
              visualize.grey(entropy[0].numpy() / np.log(3.0))]
    panels += [visualize.grey(styles[..., c]) for c in range(styles.shape[-1])]
    panels = [np.kron(panel, np.ones((args.zoom, args.zoom, 1), np.uint8)) for panel in panels]
    visualize.write_png(args.out, visualize.side_by_side(panels))
    print(f"{args.out}: input | labels | uncertainty | background | healthy | ground glass | "
          f"consolidation")


def read_png(path: str):
    """A grey PNG as float32 (height, width) in [0, 1] (grey level / 255).

    Raises:
        DataError: missing or unreadable file.
    """
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    from tfcovid.errors import DataError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("L"), np.float32) / 255.0
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError) as error:
        raise DataError(f"{path}: not a readable image ({error})") from None


def read_store_slice(store: str, case_id: str, index: int, data):
    """Slice ``index`` of ``case_id`` windowed to [0, 1] as the run's ``data`` settings.

    Raises:
        DataError: unknown case or slice.
    """
    import numpy as np

    from tfcovid.data import transforms
    from tfcovid.data.store import CaseStore
    from tfcovid.errors import DataError

    with CaseStore(store) as cases:
        if case_id not in cases.case_ids:
            raise DataError(f"{store}: no case {case_id!r}")
        case = cases.read(case_id)
        if not 0 <= index < case.num_slices:
            raise DataError(f"{store}: case {case_id!r} has {case.num_slices} slices; no "
                            f"slice {index}")
        image = case.slice_arrays(index)["image"]
        intensity = cases.intensity
    if intensity == "hu":
        unit = transforms.window_hu(image, data.window_level_hu, data.window_width_hu)
    else:
        unit = transforms.scale_windowed8(image)
    return np.asarray(unit, np.float32)
