"""Tests of tfcovid.data.pipeline on tiny synthetic stores (tests/data/synthetic.py)."""

import collections
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import REPO_ROOT
from tests.data import synthetic
from tfcovid.data import augment, patches, pipeline, transforms
from tfcovid.data.store import Case, write_store
from tfcovid.errors import DataError

SIZE = (32, 48)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    return synthetic.write_hu_store(tmp_path_factory.mktemp("pipeline") / "tiny.h5")


def config(store_path, **overrides):
    settings = dict(store=store_path, image_size=SIZE, channels=1, normalisation="unit",
                    batch_size=2)
    return pipeline.DataConfig(**{**settings, **overrides})


def elements(dataset):
    return [{key: value.numpy() for key, value in element.items()} for element in dataset]


def test_element_spec(store_path):
    cfg = config(store_path, channels=3, normalisation="imagenet", include_prior=True)
    spec = pipeline.labelled_dataset(cfg).element_spec
    expected = {"image": ((None, 32, 48, 3), tf.float32), "mask": ((None, 32, 48, 1), tf.float32),
                "label": ((None, 32, 48), tf.int32), "edge": ((None, 32, 48, 1), tf.float32),
                "prior": ((None, 32, 48, 3), tf.float32), "case_id": ((None,), tf.string),
                "slice_index": ((None,), tf.int32)}
    assert {key: (tuple(value.shape), value.dtype) for key, value in spec.items()} == expected
    unlabelled = pipeline.unlabelled_dataset(config(store_path), batch=False).element_spec
    assert set(unlabelled) == {"image", "case_id", "slice_index"}


def test_hu_store_is_windowed_like_numpy(store_path):
    cfg = config(store_path, image_size=(40, 56), batch_size=8)
    case = synthetic.labelled_case("a")
    (batch,) = elements(pipeline.labelled_dataset(cfg, ["a"]))
    np.testing.assert_allclose(batch["image"][..., 0], transforms.window_hu(case.image),
                               atol=1e-6)
    np.testing.assert_array_equal(batch["label"], case.label)
    np.testing.assert_array_equal(batch["mask"][..., 0], case.label > 0)
    np.testing.assert_array_equal(batch["edge"][0, ..., 0], transforms.edge_map(case.label[0]))
    assert batch["case_id"].tolist() == [b"a", b"a"] and batch["slice_index"].tolist() == [0, 1]
    imagenet = config(store_path, image_size=(40, 56), channels=3, normalisation="imagenet")
    (first,) = elements(pipeline.labelled_dataset(imagenet, ["a"], batch=False).take(1))
    expected = transforms.normalise_imagenet(np.repeat(transforms.window_hu(case.image[0])[
        ..., None], 3, -1))
    np.testing.assert_allclose(first["image"], expected, atol=1e-5)


def test_edge_method_is_used(store_path):
    cfg = config(store_path, image_size=(40, 56), edge_method="gradient")
    (first,) = elements(pipeline.labelled_dataset(cfg, ["a"], batch=False).take(1))
    label = synthetic.labelled_case("a").label[0]
    np.testing.assert_array_equal(first["edge"][..., 0], transforms.edge_map(label, "gradient"))


def test_window_settings_are_used(store_path):
    cfg = config(store_path, image_size=(40, 56), window_level_hu=-500, window_width_hu=1000)
    (first,) = elements(pipeline.labelled_dataset(cfg, ["a"], batch=False).take(1))
    # -900 HU in [-1000, 0] -> 0.1; -300 HU -> 0.7
    np.testing.assert_allclose(np.unique(first["image"]), [0.1, 0.7], atol=1e-6)


def test_windowed8_store_is_divided_by_255(tmp_path):
    grey = np.tile(np.arange(0, 255, 5, dtype=np.uint8)[:48], (2, 32, 1))
    path = tmp_path / "grey.h5"
    write_store(path, [Case("g", image=grey, label=np.zeros_like(grey))], intensity="windowed8")
    (batch,) = elements(pipeline.labelled_dataset(config(path), ["g"]))
    np.testing.assert_allclose(batch["image"][..., 0], grey / 255, atol=1e-7)


def test_variable_slice_sizes_are_cropped_before_resizing(store_path):
    cfg = config(store_path, image_size=(40, 56))
    by_slice = {element["slice_index"]: element
                for element in elements(pipeline.labelled_dataset(cfg, ["c"], batch=False))}
    small = by_slice[1]  # true size 30 x 41, padded with 3000 HU (window 1.0) in the store
    assert small["image"].max() <= transforms.window_hu(synthetic.LESION_HU) + 1e-6
    case = synthetic.labelled_case("c", sizes=np.array([[40, 56], [30, 41]]))
    cropped = transforms.window_hu(case.image[1, :30, :41])[..., None]
    np.testing.assert_allclose(small["image"], tf.image.resize(cropped, (40, 56)).numpy(),
                               atol=1e-6)
    label = tf.image.resize(case.label[1, :30, :41, None].astype(np.int32), (40, 56), "nearest")
    np.testing.assert_array_equal(small["label"], label.numpy()[..., 0])
    np.testing.assert_allclose(by_slice[0]["image"][..., 0], transforms.window_hu(case.image[0]),
                               atol=1e-6)


def test_priors(store_path):
    native = dict(include_prior=True, image_size=(40, 56))  # the prior is resized bilinearly
    truth = elements(pipeline.labelled_dataset(config(store_path, **native), ["b"],
                                               batch=False))
    assert all(np.array_equal(element["prior"], element["mask"]) for element in truth)
    assert all(element["prior"].any() for element in truth)
    zeros = pipeline.labelled_dataset(config(store_path, include_prior=True,
                                             prior_source="zeros"), ["b"], batch=False)
    assert not any(element["prior"].any() for element in elements(zeros))
    unlabelled = pipeline.unlabelled_dataset(config(store_path, include_prior=True), ["u"],
                                             batch=False)
    assert not any(element["prior"].any() for element in elements(unlabelled))


def test_case_selection_errors(store_path):
    with pytest.raises(DataError, match=r"tiny\.h5: case 'u' has no label"):
        pipeline.labelled_dataset(config(store_path), ["a", "u"])
    with pytest.raises(DataError, match=r"tiny\.h5: no case 'zz'"):
        pipeline.unlabelled_dataset(config(store_path), ["zz"])
    assert pipeline.slice_count(config(store_path)) == 2 + 3 + 2
    assert pipeline.slice_count(config(store_path), labelled=False) == 2 + 3 + 2 + 3


def test_training_epochs_permute_all_slices_and_replay(store_path):
    cfg = config(store_path, augmentation=augment.AugmentConfig(), seed=3)
    keys = lambda stream: [(e["case_id"], e["slice_index"]) for e in stream]  # noqa: E731
    two = elements(pipeline.labelled_dataset(cfg, training=True, epochs=2, batch=False))
    first, second = two[:7], two[7:]
    everything = sorted(keys(elements(pipeline.labelled_dataset(cfg, batch=False))))
    assert sorted(keys(first)) == sorted(keys(second)) == everything
    assert keys(first) != keys(second)
    again = elements(pipeline.labelled_dataset(cfg, training=True, epochs=2, batch=False))
    resumed = elements(pipeline.labelled_dataset(cfg, training=True, first_epoch=1,
                                                 batch=False))
    for left, right in zip(two, again):
        np.testing.assert_array_equal(left["image"], right["image"])
    for left, right in zip(second, resumed):
        np.testing.assert_array_equal(left["image"], right["image"])
    same_slice = [e for e in first if (e["case_id"], e["slice_index"]) == (b"b", 1)]
    other_epoch = [e for e in second if (e["case_id"], e["slice_index"]) == (b"b", 1)]
    assert not np.array_equal(same_slice[0]["image"], other_epoch[0]["image"])


def test_cache_gives_the_same_elements(store_path):
    cached = config(store_path, cache=True)
    dataset = pipeline.labelled_dataset(cached, ["b"], epochs=2, batch=False)
    plain = elements(pipeline.labelled_dataset(config(store_path), ["b"], batch=False))
    for left, right in zip(elements(dataset), plain * 2):
        np.testing.assert_array_equal(left["image"], right["image"])


def test_patch_mode_tiles_native_slices(store_path):
    cfg = config(store_path, image_size=None, patch_size=16, patch_stride=8, batch_size=5)
    stream = elements(pipeline.labelled_dataset(cfg, ["c"], batch=False))
    # slice 0: 40 x 56 -> (ceil(24/8)+1) * (ceil(40/8)+1) = 4 * 6; slice 1: 30 x 41 -> 3 * 5
    counts = collections.Counter(element["slice_index"] for element in stream)
    assert counts == {0: patches.patch_count(40, 16, 8) * patches.patch_count(56, 16, 8),
                      1: 15}
    assert counts[0] == 24
    first = next(e for e in stream if e["slice_index"] == 1 and e["patch_index"] == 0)
    case = synthetic.labelled_case("c", sizes=np.array([[40, 56], [30, 41]]))
    expected = transforms.window_hu(case.image[1, :16, :16])
    np.testing.assert_allclose(first["image"][..., 0], expected, atol=1e-6)
    spec = pipeline.labelled_dataset(cfg, ["c"]).element_spec
    assert spec["image"].shape.as_list() == [None, 16, 16, 1]
    assert spec["label"].shape.as_list() == [None, 16, 16]


def test_mixed_stream_honours_the_ratio(store_path):
    cfg = config(store_path, cache=True)
    labelled = pipeline.labelled_dataset(cfg, epochs=None, training=True, batch=False)
    unlabelled = pipeline.unlabelled_dataset(cfg, ["u"], epochs=None, training=True,
                                             batch=False)
    mixed = pipeline.mixed_dataset(labelled, unlabelled, labelled_fraction=0.25, seed=1)
    assert set(mixed.element_spec) == set(labelled.element_spec) | {"labelled"}
    flags, unlabelled_seen = [], 0
    for element in pipeline.batch_dataset(mixed, 50).take(16):
        flags += element["labelled"].numpy().tolist()
        chosen = ~element["labelled"].numpy()
        assert not element["mask"].numpy()[chosen].any()
        assert set(element["case_id"].numpy()[chosen]) <= {b"u"}
        unlabelled_seen += chosen.sum()
    # 800 draws of p = 0.25: standard deviation sqrt(0.25 * 0.75 / 800) ~ 0.015
    assert abs(np.mean(flags) - 0.25) < 0.06 and unlabelled_seen > 0


DISTRIBUTED_SCRIPT = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from tfcovid.data import augment, pipeline
    cfg = pipeline.DataConfig(store=sys.argv[1], image_size=(32, 48), channels=1,
                              normalisation="unit", batch_size=4, seed=5,
                              augmentation=augment.AugmentConfig())
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    batch = next(iter(strategy.experimental_distribute_dataset(
        pipeline.distributable_dataset(cfg, epochs=1))))

    @tf.function
    def step(batch):
        per_replica = lambda e: (tf.reduce_sum(e["image"] * e["mask"]), tf.shape(e["image"])[0])
        total, rows = strategy.run(per_replica, args=(batch,))
        return (strategy.reduce(tf.distribute.ReduceOp.SUM, total, axis=None),
                strategy.experimental_local_results(rows))

    total, rows = step(batch)
    single = next(iter(pipeline.distributable_dataset(cfg, epochs=1)))
    print(json.dumps({"replicas": strategy.num_replicas_in_sync,
                      "rows": [int(r) for r in rows], "total": float(total),
                      "single": float(tf.reduce_sum(single["image"] * single["mask"]))}))
""")


def test_one_step_under_mirrored_strategy_on_two_cpus(store_path):
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]), "TF_CPP_MIN_LOG_LEVEL": "2"}
    run = subprocess.run([sys.executable, "-c", DISTRIBUTED_SCRIPT, store_path], cwd=REPO_ROOT,
                         env=environment, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2 and result["rows"] == [2, 2]
    assert result["total"] == pytest.approx(result["single"], rel=1e-6)
    assert result["single"] > 0
