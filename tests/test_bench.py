"""tfcovid bench: the figures' structure, arithmetic and trace counts (never their speed), the
predict stage timings, and the traced prediction path against the eager one."""

import json
import statistics

import keras
import numpy as np
import pytest

from tfcovid import bench, export, inference, predict
from tfcovid.cli.bench import format_figures
from tfcovid.cli.main import main

REQUIRED = ("seconds_per_image", "images_per_second", "peak_memory_mb", "device", "model",
            "mode", "batch", "size", "precision", "xla")


def check_arithmetic(figures, per_call, repeat):
    times = figures["seconds_per_batch"]
    assert len(times) == repeat and min(times) > 0
    assert figures["seconds_per_image"] == pytest.approx(statistics.median(times) / per_call)
    assert figures["images_per_second"] * figures["seconds_per_image"] == pytest.approx(1.0)
    assert (figures["seconds_per_image_min"] <= figures["seconds_per_image"]
            <= figures["seconds_per_image_max"])
    assert figures["peak_memory_mb"] > 0


@pytest.mark.parametrize("model, mode", [("infnet", "infer"), ("multi_infnet", "train"),
                                         ("fcn8", "infer")])
def test_model_figures_are_consistent_and_restore_the_dtype_policy(model, mode):
    # 1 warm-up + 3 timed calls alternate two different batches of one shape: one trace
    settings = bench.BenchSettings(model=model, mode=mode, batch=2, size=32, repeat=3,
                                   warmup=1, tiny=True, precision="mixed_bfloat16",
                                   input_bound=mode == "train")
    figures = bench.benchmark(settings)
    assert set(REQUIRED) <= set(figures)
    assert (figures["model"], figures["mode"], figures["batch"], figures["size"],
            figures["precision"], figures["xla"]) == (model, mode, 2, 32, "mixed_bfloat16",
                                                      False)
    check_arithmetic(figures, 2, 3)
    assert figures["traces"] == 1
    assert keras.config.dtype_policy().name == "float32"
    if mode == "train":  # the input pipeline's share of a step
        step = statistics.median(figures["seconds_per_batch"])
        assert figures["input_seconds_per_batch"] > 0
        assert figures["input_bound_fraction"] == pytest.approx(
            figures["input_seconds_per_batch"] / step)


def test_infer_mode_runs_the_network_once_per_call(monkeypatch):
    # Inf-Net has five outputs; the timed function must not run the network once per output
    calls = []
    build = bench.build_network

    def counting_network(*args, **kwargs):
        network = build(*args, **kwargs)
        call = network.call
        network.call = lambda *inputs, **options: (calls.append(1), call(*inputs, **options))[1]
        return network

    monkeypatch.setattr(bench, "build_network", counting_network)
    figures = bench.benchmark(bench.BenchSettings(model="infnet", mode="infer", batch=1,
                                                  size=32, repeat=2, warmup=1, tiny=True))
    assert figures["traces"] == 1
    assert len(calls) == 1  # traced once, so one call in the graph


def test_train_mode_with_the_backbone_recomputed():
    figures = bench.benchmark(bench.BenchSettings(model="infnet", mode="train", batch=2,
                                                  size=32, repeat=1, warmup=1, tiny=True,
                                                  recompute=True))
    assert figures["recompute"] is True and figures["traces"] == 1
    check_arithmetic(figures, 2, 1)


def test_pipeline_figures():
    figures = bench.benchmark(bench.BenchSettings(mode="pipeline", batch=3, size=64, repeat=2,
                                                  warmup=1, augment=False))
    check_arithmetic(figures, 3, 2)
    assert figures["traces"] is None


def test_predict_figures_time_every_stage_of_a_volume():
    # 3 slices at 2 per pass: batches of 2 and 1 slices, run at once, share one trace
    figures = bench.benchmark(bench.BenchSettings(
        model="multi_infnet", mode="predict", batch=2, size=64, slices=3, network_size=32,
        repeat=1, warmup=0, tiny=True, batches_at_once=3))
    check_arithmetic(figures, 3, 1)
    assert figures["batches_at_once"] == 3
    assert "2 slices per pass, 3 at once, network 32 px" in format_figures(figures)
    assert figures["seconds_per_volume"] == pytest.approx(figures["seconds_per_batch"][0])
    stages = figures["stage_seconds"]
    assert tuple(stages) == bench.STAGES and min(stages.values()) > 0
    assert sum(stages.values()) <= figures["seconds_per_volume"]
    assert figures["traces"] == 1


def test_traced_prediction_equals_the_eager_one(tmp_path):
    keras.utils.set_random_seed(3)
    run_dir = bench.save_untrained_run(tmp_path / "run", "unet", 32, tiny=True)
    predictor = predict.load_predictor(run_dir, "final")
    slices_hu = np.random.default_rng(1).uniform(-1200, 200, (3, 40, 48))
    traced = predictor.predict_hu(slices_hu)
    eager = export.predict_hu(predictor.run, slices_hu)
    assert sorted(traced) == sorted(eager)
    np.testing.assert_allclose(traced["probabilities"], eager["probabilities"], atol=1e-6)
    top_two = np.sort(eager["probabilities"], axis=-1)[..., -2:]
    clear = top_two[..., 1] - top_two[..., 0] > 1e-5  # no near-ties
    np.testing.assert_array_equal(traced["label"][clear], eager["label"][clear])
    predictor.predict_hu(slices_hu[:2, :24, :32])  # another batch and slice size
    assert predictor.traced_predict.experimental_get_tracing_count() == 1
    compiled = predict.load_predictor(run_dir, "final", jit_compile=True).predict_hu(slices_hu)
    np.testing.assert_allclose(compiled["probabilities"], eager["probabilities"], atol=1e-5)


def test_untrained_run_has_best_weights_equal_to_its_final_ones(tmp_path):
    run_dir = bench.save_untrained_run(tmp_path / "run", "fcn8", 32, tiny=True)
    final, best = (inference.load_run(run_dir, weights).network for weights in ("final", "best"))
    assert len(best.weights) == len(final.weights) > 0
    for saved, loaded in zip(final.weights, best.weights):
        np.testing.assert_array_equal(loaded.numpy(), saved.numpy())


def test_bad_settings_are_value_errors():
    with pytest.raises(ValueError, match=r"model must be one of .*Received: model='vgg'"):
        bench.BenchSettings(model="vgg")
    with pytest.raises(ValueError, match=r"Received: batch=0"):
        bench.BenchSettings(batch=0)
    with pytest.raises(ValueError, match=r"batches_at_once=0"):
        bench.BenchSettings(mode="predict", batches_at_once=0)
    assert bench.BenchSettings().batches_at_once == predict.BATCHES_AT_ONCE
    with pytest.raises(ValueError, match=r"multiple of 16.*size=40"):
        bench.BenchSettings(model="ssinfnet", mode="train", size=40)
    with pytest.raises(ValueError, match=r"stichnet is timed in infer and train modes"):
        bench.BenchSettings(model="stichnet", mode="predict", size=64)
    with pytest.raises(ValueError, match=r"input_bound applies to train mode"):
        bench.BenchSettings(mode="infer", input_bound=True)
    with pytest.raises(ValueError, match=r"recompute applies to train mode"):
        bench.BenchSettings(mode="predict", recompute=True)


def test_cli_writes_json_and_refuses_bad_values(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "1")  # recorded with the figures, as the threads
    monkeypatch.setenv("NUMPY_MADVISE_HUGEPAGE", "0")
    path = tmp_path / "figures.json"
    assert main(["bench", "--model", "unet", "--mode", "infer", "--batch", "2", "--size", "32",
                 "--repeat", "2", "--warmup", "1", "--tiny", "--json", str(path)]) == 0
    figures = json.loads(path.read_text())
    assert set(REQUIRED) <= set(figures) and figures["model"] == "unet"
    printed = capsys.readouterr().out
    assert f"images/second   {figures['images_per_second']:.2f}" in printed
    assert "traces          1" in printed
    assert figures["malloc_arena_max"] == "1" and "malloc arenas   1" in printed
    assert figures["numpy_madvise_hugepage"] == "0" and "numpy hugepage  0" in printed
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    monkeypatch.delenv("NUMPY_MADVISE_HUGEPAGE")
    assert bench.environment()["malloc_arena_max"] is None
    assert bench.environment()["numpy_madvise_hugepage"] is None
    assert main(["bench", "--size", "16"]) == 2
    assert "size and network_size >= 32" in capsys.readouterr().err
