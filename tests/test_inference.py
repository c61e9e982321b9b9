"""`tfcovid.inference.load_run`: which weights each choice loads, and one-line errors for a
corrupt network or weights file."""

import re

import keras
import numpy as np
import pytest

import tfcovid.models
from tests.test_export import make_run
from tfcovid import inference
from tfcovid.errors import DataError

MODEL = "fcn8_vgg16"  # the quickest registered network to build and load


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny FCN-8s run whose best weights differ from its final ones."""
    keras.utils.set_random_seed(11)
    workdir = make_run(tmp_path_factory.mktemp("inference") / "run", MODEL,
                       tfcovid.models.MODELS.config(MODEL).tiny())
    network = keras.saving.load_model(workdir / inference.MODEL_FILE)
    for variable in network.weights:
        variable.assign(variable + 0.25)
    network.save_weights(workdir / inference.BEST_WEIGHTS_FILE)
    return workdir


def test_best_weights_replace_the_saved_ones_and_final_keeps_them(run_dir):
    saved = keras.saving.load_model(run_dir / inference.MODEL_FILE)
    best = inference.load_run(run_dir, "best").network
    final = inference.load_run(run_dir, "final").network
    assert [weight.path for weight in best.weights] == [weight.path for weight in saved.weights]
    for best_weight, final_weight, saved_weight in zip(best.weights, final.weights,
                                                       saved.weights):
        np.testing.assert_array_equal(final_weight.numpy(), saved_weight.numpy())
        np.testing.assert_allclose(best_weight.numpy(), saved_weight.numpy() + 0.25, rtol=1e-6)
    images = np.random.default_rng(0).random((1, 64, 64, 3)).astype(np.float32)
    shifted = keras.saving.load_model(run_dir / inference.MODEL_FILE)
    shifted.load_weights(run_dir / inference.BEST_WEIGHTS_FILE)
    np.testing.assert_array_equal(best(images, training=False)["logits"],
                                  shifted(images, training=False)["logits"])


@pytest.mark.parametrize("weights", ["best", "final"])
def test_a_precision_rebuilds_the_network_with_the_chosen_weights(run_dir, weights):
    as_saved = inference.load_run(run_dir, weights).network
    rebuilt = inference.load_run(run_dir, weights, precision="mixed_bfloat16").network
    assert as_saved.dtype_policy.name == "float32"
    assert rebuilt.dtype_policy.name == "mixed_bfloat16"
    assert [weight.path for weight in rebuilt.weights] == [weight.path
                                                           for weight in as_saved.weights]
    for rebuilt_weight, saved_weight in zip(rebuilt.weights, as_saved.weights):
        assert rebuilt_weight.dtype == saved_weight.dtype  # variables stay float32
        np.testing.assert_array_equal(rebuilt_weight.numpy(), saved_weight.numpy())


@pytest.mark.parametrize("corrupt, weights, precision", [
    (inference.MODEL_FILE, "best", None), (inference.MODEL_FILE, "final", None),
    (inference.BEST_WEIGHTS_FILE, "best", None),
    (inference.BEST_WEIGHTS_FILE, "best", "mixed_bfloat16")])
def test_a_corrupt_file_is_a_one_line_data_error_naming_it(run_dir, tmp_path, corrupt, weights,
                                                           precision):
    broken = tmp_path / "run"
    broken.mkdir()
    for name in (inference.CONFIG_FILE, inference.MODEL_FILE, inference.BEST_WEIGHTS_FILE):
        (broken / name).write_bytes(b"not a zip or HDF5 file" if name == corrupt
                                    else (run_dir / name).read_bytes())
    with pytest.raises(DataError, match=rf"{re.escape(corrupt)}: cannot be loaded \(") as raised:
        inference.load_run(broken, weights, precision=precision)
    assert "\n" not in str(raised.value)


def test_best_or_final_names_the_weights_a_run_folder_holds(run_dir, tmp_path):
    assert inference.best_or_final(run_dir) == "best"
    assert inference.best_or_final(tmp_path) == "final"  # no best.weights.h5
