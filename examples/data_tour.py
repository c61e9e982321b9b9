"""
Title: A tour of the tfcovid data layer on the built-in phantom
Description: make a phantom store, split it by patient, stream augmented batches with tf.data,
tile and stitch 64x64 patches, and score a trivial HU-threshold "model" with the papers' metrics.
Run time: about 15 s on 2 CPU cores.

Usage:
    python examples/data_tour.py [--out DIR]

The threshold baseline marks every lung pixel between -750 and +100 HU as infection. It knows
nothing a network would learn, so it is the floor a trained model has to beat on the phantom.
"""

import argparse
import os
import tempfile

import numpy as np

from tfcovid.data import patches, phantom, pipeline, splits, transforms
from tfcovid.data.augment import AugmentConfig
from tfcovid.data.store import CaseStore
from tfcovid.metrics import evaluate_binary, format_table

parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
parser.add_argument("--out", default=None, help="folder for the store (default: a temp dir)")
args = parser.parse_args()
out = args.out or tempfile.mkdtemp(prefix="tfcovid-tour-")
os.makedirs(out, exist_ok=True)
store_path = os.path.join(out, "phantom.h5")

"""
## 1. A phantom store: 6 patients, 12 slices each, 128 px
"""
phantom.write_phantom(store_path, num_cases=6, num_slices=12, size=128, seed=0,
                      overwrite=True, progress=False)

"""
## 2. A split by patient (never by slice), stratified by severity
"""
case_ids, patient_ids, severities = splits.store_case_table(store_path)
split = splits.train_val_test_split(case_ids, (0.5, 0.17, 0.33), patient_ids=patient_ids,
                                    severities=severities, seed=0)
print(f"train {split.train}  val {split.val}  test {split.test}")

"""
## 3. Augmented training batches: image, infection mask and edge map move together
"""
config = pipeline.DataConfig(store=store_path, image_size=(96, 96), batch_size=4,
                             augmentation=AugmentConfig(), seed=0)
batch = next(iter(pipeline.labelled_dataset(config, split.train, training=True)))
print({key: tuple(value.shape) for key, value in batch.items()})

"""
## 4. 64x64 patches with overlap, stitched back exactly
"""
tiles, grid = patches.tile(batch["image"], size=64, stride=32)
restored = patches.stitch(tiles, grid)
print(f"{tiles.shape[0]} patches; stitch(tile(x)) == x: "
      f"{bool(np.array_equal(restored.numpy(), batch['image'].numpy()))}")

"""
## 5. A trivial baseline scored with the papers' metrics on the test patients
"""
predictions, truths = [], []
with CaseStore(store_path) as store:
    for case_id in split.test:
        case = store.read(case_id)
        for index in range(case.num_slices):
            arrays = case.slice_arrays(index)
            dense = (arrays["image"] > -750) & (arrays["image"] < 100) & (arrays["lung"] > 0)
            predictions.append(dense.astype(np.float32))
            truths.append(arrays["label"] > 0)
print(format_table(evaluate_binary(predictions, truths)))
print(f"lung-window example: -600 HU -> {transforms.window_hu(np.array([-600.0]))[0]:.2f}")
