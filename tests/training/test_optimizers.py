import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcovid.training.optimizers import (
    CompoundingStepDecay,
    Lookahead,
    LookaheadReset,
    PiecewiseConstantByEpoch,
    StepDecay,
    TorchSGD,
    adam,
)

# quadratic f(theta) = sum(a (theta - c)^2) / 2, gradient a (theta - c)
CURVATURE = np.array([1.0, 2.0, 0.5, 4.0], "float32")
CENTRE = np.array([0.5, -1.0, 2.0, 0.25], "float32")
START = np.array([1.0, 2.0, -3.0, 0.5], "float32")


class NumpyLookahead:
    """SSInfNet's lookahead.py step (spec 8.2) around a given inner update, in float64."""

    def __init__(self, inner_step, k=5, alpha=0.5):
        self.inner_step, self.k, self.alpha = inner_step, k, alpha
        self.counter, self.slow = 0, None

    def step(self, theta, grad):
        theta = self.inner_step(theta, grad)
        if self.counter == 0:
            if self.slow is None:
                self.slow = theta.copy()  # lazy: the first synchronisation is a no-op
            self.slow += self.alpha * (theta - self.slow)
            theta = self.slow.copy()
        self.counter += 1
        if self.counter >= self.k:
            self.counter = 0
        return theta


class NumpyTorchSGD:
    """torch.optim.SGD (dampening 0, no Nesterov) after clip_grad_value_, in float64."""

    def __init__(self, learning_rates, momentum=0.0, weight_decay=0.0, clipvalue=None):
        self.learning_rates, self.momentum = learning_rates, momentum
        self.weight_decay, self.clipvalue = weight_decay, clipvalue
        self.buffer, self.t = None, 0

    def __call__(self, theta, grad):
        if self.clipvalue is not None:
            grad = np.clip(grad, -self.clipvalue, self.clipvalue)
        grad = grad + self.weight_decay * theta
        if self.momentum:
            self.buffer = grad.copy() if self.buffer is None else self.momentum * self.buffer + grad
            grad = self.buffer
        theta = theta - self.learning_rates[self.t] * grad
        self.t += 1
        return theta


def quadratic_step(optimizer, theta):
    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = 0.5 * tf.reduce_sum(CURVATURE * (theta - CENTRE) ** 2)
        optimizer.apply(tape.gradient(loss, [theta]), [theta])

    return step


def numpy_trajectory(update, steps):
    theta, path = START.astype("float64"), []
    for _ in range(steps):
        theta = update(theta, CURVATURE * (theta - CENTRE))
        path.append(theta)
    return np.array(path)


def keras_trajectory(optimizer, steps, theta=None):
    theta = theta if theta is not None else keras.Variable(START, name="theta")
    step, path = quadratic_step(optimizer, theta), []
    for _ in range(steps):
        step()
        path.append(np.array(theta.numpy()))
    return np.array(path)


def test_lookahead_follows_the_reference_algorithm_step_by_step():
    steps = 13
    expected = numpy_trajectory(NumpyLookahead(NumpyTorchSGD([0.1] * steps)).step, steps)
    got = keras_trajectory(Lookahead(keras.optimizers.SGD(0.1)), steps)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    # closed form: plain SGD contracts theta - c by (1 - lr a) per step; the first real
    # synchronisation (step 6) averages theta_1 with theta_6 = c + (1 - lr a)^5 (theta_1 - c)
    contraction = 1.0 - 0.1 * CURVATURE
    theta_1 = CENTRE + contraction * (START - CENTRE)
    fast_6 = CENTRE + contraction**5 * (theta_1 - CENTRE)
    np.testing.assert_allclose(got[:5], [CENTRE + contraction**n * (START - CENTRE)
                                         for n in range(1, 6)], atol=1e-6)
    np.testing.assert_allclose(got[5], theta_1 + 0.5 * (fast_6 - theta_1), atol=1e-6)


def test_lookahead_with_momentum_sgd_other_k_and_reset():
    def reference_update(k, alpha):
        inner = NumpyTorchSGD([0.05] * 20, momentum=0.7)
        lookahead = [NumpyLookahead(inner, k, alpha)]

        def update(theta, grad):
            if inner.t == 7:  # a fresh Lookahead around the same SGD, as each epoch (single)
                lookahead[0] = NumpyLookahead(inner, k, alpha)
            return lookahead[0].step(theta, grad)

        return update

    expected = numpy_trajectory(reference_update(3, 0.8), 12)
    optimizer = Lookahead(TorchSGD(0.05, momentum=0.7), sync_period=3, slow_step_size=0.8)
    theta = keras.Variable(START, name="theta")
    first = keras_trajectory(optimizer, 7, theta)
    optimizer.reset()
    second = keras_trajectory(optimizer, 5, theta)
    np.testing.assert_allclose(np.concatenate([first, second]), expected, atol=1e-6)
    assert int(optimizer.step_counter) == 5 and int(optimizer.iterations) == 12


def test_checkpoint_resumes_exactly(tmp_path):
    def make():
        theta = keras.Variable(START, name="theta")
        optimizer = Lookahead(TorchSGD(0.05, momentum=0.9, coupled_weight_decay=0.01))
        optimizer.build([theta])
        return theta, optimizer, tf.train.Checkpoint(theta=theta, optimizer=optimizer)

    theta, optimizer, checkpoint = make()
    before = keras_trajectory(optimizer, 7, theta)  # past the first real synchronisation (6)
    path = checkpoint.write(str(tmp_path / "ckpt"))
    uninterrupted = keras_trajectory(optimizer, 6, theta)

    theta, restored, checkpoint = make()
    checkpoint.read(path).assert_consumed()
    assert int(restored.step_counter) == 7 and int(restored.iterations) == 7
    np.testing.assert_array_equal(restored.slow_weights[0].numpy(), before[5])  # set at step 6
    np.testing.assert_allclose(keras_trajectory(restored, 6, theta), uninterrupted, atol=1e-7)


def test_fit_trains_saves_and_resets_each_epoch(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = np.random.default_rng(0).normal(size=(32, 3)).astype("float32")
    targets = inputs @ np.array([[1.0], [-2.0], [0.5]], "float32") + 0.3
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    optimizer = Lookahead(adam(1e-1))
    model.compile(optimizer=optimizer, loss="mse")
    history = model.fit(inputs, targets, batch_size=8, epochs=3, verbose=0,
                        callbacks=[LookaheadReset()])
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0]
    assert [tuple(slow.shape) for slow in optimizer.slow_weights] == [(3, 1), (1,)]
    assert int(optimizer.iterations) == 12 and int(optimizer.step_counter) == 4  # reset per epoch

    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert isinstance(loaded.optimizer, Lookahead)
    assert loaded.optimizer.get_config() == optimizer.get_config()
    for saved, original in zip(loaded.optimizer.variables, optimizer.variables):
        np.testing.assert_array_equal(saved.numpy(), original.numpy())


def test_torch_sgd_matches_pytorch_semantics_with_a_changing_rate():
    # large curvature so clipping binds; the rate changes at steps 2 and 4 (one step per epoch)
    learning_rates = [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    schedule = PiecewiseConstantByEpoch(1, boundaries=(2, 4), values=(0.1, 0.01, 0.001))
    optimizer = TorchSGD(schedule, momentum=0.9, coupled_weight_decay=0.05, clipvalue=0.5)
    reference = NumpyTorchSGD(learning_rates, momentum=0.9, weight_decay=0.05, clipvalue=0.5)
    np.testing.assert_allclose(keras_trajectory(optimizer, 6), numpy_trajectory(reference, 6),
                               atol=1e-6)
    plain = NumpyTorchSGD([0.1] * 3, weight_decay=0.05)
    np.testing.assert_allclose(keras_trajectory(TorchSGD(0.1, coupled_weight_decay=0.05), 3),
                               numpy_trajectory(plain, 3), atol=1e-6)


def test_adam_matches_pytorch_adam():
    def torch_adam(lr=0.01, betas=(0.9, 0.999), eps=1e-8, clipvalue=0.5):
        state = {"m": 0.0, "v": 0.0, "t": 0}

        def update(theta, grad):
            grad = np.clip(grad, -clipvalue, clipvalue)
            state["t"] += 1
            state["m"] = betas[0] * state["m"] + (1 - betas[0]) * grad
            state["v"] = betas[1] * state["v"] + (1 - betas[1]) * grad**2
            m_hat = state["m"] / (1 - betas[0] ** state["t"])
            v_hat = state["v"] / (1 - betas[1] ** state["t"])
            return theta - lr * m_hat / (np.sqrt(v_hat) + eps)

        return update

    optimizer = adam(0.01)
    assert optimizer.epsilon == 1e-8 and optimizer.clipvalue == 0.5
    np.testing.assert_allclose(keras_trajectory(optimizer, 5), numpy_trajectory(torch_adam(), 5),
                               atol=1e-6)


def test_step_decay_by_epoch():
    schedule = StepDecay(steps_per_epoch=3)  # reference epochs count from 1
    # (keras epoch index, step within it) -> reference epoch -> rate
    for epoch, expected in [(1, 1e-4), (49, 1e-4), (50, 1e-5), (99, 1e-5), (100, 1e-6)]:
        for within in (0, 2):
            step = (epoch - 1) * 3 + within
            assert float(schedule(step)) == pytest.approx(expected, rel=1e-6), (epoch, within)


def test_compounding_decay_follows_the_in_place_helper():
    schedule = CompoundingStepDecay(steps_per_epoch=2)
    rate = 1e-4
    for epoch in range(1, 80):  # adjust_lr at the start of each epoch, in float64
        rate *= 0.1 ** (epoch // 50)
        assert float(schedule((epoch - 1) * 2 + 1)) == pytest.approx(rate, rel=1e-5), epoch
    # spec 4.4 table: 1e-5 at 50, 1e-6 at 51, 1e-54 at 99 (0 in float32)
    assert float(schedule(49 * 2)) == pytest.approx(1e-5, rel=1e-6)
    assert float(schedule(50 * 2)) == pytest.approx(1e-6, rel=1e-6)
    assert float(schedule(98 * 2)) == 0.0


def test_pretraining_table_by_epoch():
    schedule = PiecewiseConstantByEpoch(steps_per_epoch=7)  # epochs count from 0
    for epoch, expected in [(0, 0.1), (39, 0.1), (40, 0.01), (79, 0.01), (80, 0.001),
                            (89, 0.001), (90, 1e-4), (199, 1e-4)]:
        assert float(schedule(epoch * 7 + 6)) == pytest.approx(expected, rel=1e-6), epoch
    assert float(schedule(40 * 7 - 1)) == pytest.approx(0.1)  # last step of epoch 39


@pytest.mark.parametrize("optimizer", [
    Lookahead(TorchSGD(StepDecay(10), momentum=0.7, coupled_weight_decay=5e-4,
                       clipvalue=0.5), sync_period=4, slow_step_size=0.25),
    Lookahead(adam(CompoundingStepDecay(5, first_epoch=0))),
    TorchSGD(PiecewiseConstantByEpoch(3, boundaries=(2,), values=(0.1, 0.2))),
])
def test_configs_round_trip_through_json(optimizer):
    config = json.loads(json.dumps(keras.optimizers.serialize(optimizer)))
    rebuilt = keras.optimizers.deserialize(config)
    assert type(rebuilt) is type(optimizer)
    assert json.dumps(rebuilt.get_config(), sort_keys=True) == json.dumps(
        optimizer.get_config(), sort_keys=True)


def test_misuse_is_reported():
    with pytest.raises(ValueError, match=r"weight_decay=0.1"):
        TorchSGD(weight_decay=0.1)
    with pytest.raises(ValueError, match=r"momentum=1.5"):
        TorchSGD(momentum=1.5)
    with pytest.raises(ValueError, match=r"sync_period=0"):
        Lookahead(TorchSGD(), sync_period=0)
    with pytest.raises(TypeError, match=r"inner_optimizer='sgd'"):
        Lookahead("sgd")
    with pytest.raises(ValueError, match=r"boundaries=\(40, 20\)"):
        PiecewiseConstantByEpoch(1, boundaries=(40, 20), values=(1.0, 0.1, 0.01))
    with pytest.raises(ValueError, match=r"steps_per_epoch=0"):
        StepDecay(0)


MIRRORED_SCRIPT = textwrap.dedent("""
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from tfcovid.training.optimizers import Lookahead, TorchSGD

    def run(strategy):
        with strategy.scope():
            theta = keras.Variable(np.array([1.0, -2.0, 3.0], "float32"))
            optimizer = Lookahead(TorchSGD(0.1, momentum=0.5), sync_period=3)
            optimizer.build([theta])
        curvature, centre = tf.constant([1.0, 2.0, 0.5]), tf.constant([0.5, 0.0, -1.0])

        @tf.function
        def step():
            def replica_step():
                with tf.GradientTape() as tape:
                    loss = 0.5 * tf.reduce_sum(curvature * (theta - centre) ** 2)
                    loss = loss / strategy.num_replicas_in_sync
                optimizer.apply(tape.gradient(loss, [theta]), [theta])
            strategy.run(replica_step)

        path = []
        for _ in range(8):
            step()
            path.append(theta.numpy().copy())
        return np.array(path), optimizer.slow_weights[0].numpy()

    single = run(tf.distribute.get_strategy())
    mirrored = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    np.testing.assert_allclose(mirrored[0], single[0], atol=1e-6)
    np.testing.assert_allclose(mirrored[1], single[1], atol=1e-6)
    print("ok")
""")


@pytest.mark.slow
def test_lookahead_under_mirrored_strategy_equals_single_device():
    # logical devices must be set before TensorFlow starts, hence a fresh interpreter
    root = Path(__file__).resolve().parents[2]
    environment = {**os.environ, "PYTHONPATH": str(root), "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT], cwd=root, env=environment,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-2000:]
