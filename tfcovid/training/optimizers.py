"""Optimisers and learning-rate schedules of the Inf-Net and SSInfNet recipes.

Spec sections 4.1 and 4.4 (Adam, clipping, step decay), 7.9 (pre-training SGD and its LR
table), 8.2 (Lookahead) and 15 (porting notes):

- `adam`: Keras Adam with PyTorch's epsilon 1e-8 and clipping by value (0.5 in the Inf-Net
  recipes). Keras adds epsilon before the second moment's bias correction, PyTorch after, so
  Keras behaves as PyTorch with epsilon ``/ sqrt(1 - beta_2^t)``: a relative difference of
  about ``epsilon / (|g| sqrt(1 - beta_2^t))``, negligible unless gradients are near 1e-8.
- `TorchSGD`: SGD with PyTorch's semantics: coupled L2 weight decay (``g <- g + wd theta``
  after clipping, before momentum) and a momentum buffer without the learning rate
  (``v <- mu v + g``, ``theta <- theta - lr v``), so a schedule changes the step as in PyTorch.
  Keras's ``weight_decay`` is decoupled and its buffer folds the learning rate in.
  Deviation: the reference re-creates its SGD at every LR change of the pre-training table,
  which also zeroes the momentum buffer; `TorchSGD` keeps it.
- `Lookahead`: a Keras optimizer around any inner one, slow weights and step counter as
  optimizer variables (saved by ``tf.train.Checkpoint`` and in ``.keras`` files);
  `LookaheadReset` reproduces the single model's per-epoch re-creation.
- `StepDecay` (intended), `CompoundingStepDecay` (as run) and `PiecewiseConstantByEpoch` (the
  pre-training table): Keras schedules by epoch, driven by the optimizer's step counter, so
  ``fit`` and custom loops share them and resume where they stopped.

Example:

>>> import keras, numpy as np
>>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
>>> optimizer = Lookahead(TorchSGD(learning_rate=0.1, momentum=0.7))
>>> model.compile(optimizer=optimizer, loss="mse")
>>> history = model.fit(np.ones((8, 3)), np.zeros((8, 1)), epochs=2, verbose=0)
>>> int(optimizer.iterations), int(optimizer.step_counter)  # one step per epoch
(2, 2)
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

ADAM_EPSILON = 1e-8  # PyTorch's default; Keras's is 1e-7
CLIP_VALUE = 0.5
PRETRAINING_BOUNDARIES = (40, 80, 90)  # epochs of round 0's network phase (spec 7.9)
PRETRAINING_VALUES = (0.1, 0.01, 0.001, 0.0001)


def adam(learning_rate: float | keras.optimizers.schedules.LearningRateSchedule = 1e-4,
         clipvalue: float | None = CLIP_VALUE) -> keras.optimizers.Adam:
    """Adam as the Inf-Net recipe: beta (0.9, 0.999), epsilon 1e-8, gradients clipped by value.

    Args:
        learning_rate: float or schedule. Defaults to 1e-4.
        clipvalue: float or None. Every gradient element is clamped to [-clipvalue, clipvalue]
            before the step. Defaults to 0.5.

    Returns:
        `keras.optimizers.Adam`.
    """
    return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=0.9, beta_2=0.999,
                                 epsilon=ADAM_EPSILON, clipvalue=clipvalue)


def apply_reached(optimizer: keras.optimizers.Optimizer, gradients, variables) -> None:
    """Applies the gradients that exist: variables the loss does not reach (None gradient, e.g.
    Inf-Net's segmentation heads in inpainting) are left alone, weight decay included, as
    PyTorch's optimizers leave parameters without a gradient."""
    pairs = [(gradient, variable) for gradient, variable in zip(gradients, variables)
             if gradient is not None]
    optimizer.apply_gradients(pairs)


@keras.saving.register_keras_serializable(package="tfcovid")
class TorchSGD(keras.optimizers.Optimizer):
    """SGD with PyTorch's momentum form and coupled L2 weight decay (spec section 15).

    Per variable, after clipping: ``g <- g + coupled_weight_decay theta``; with momentum
    ``v <- momentum v + g`` and ``theta <- theta - lr v``, else ``theta <- theta - lr g``
    (PyTorch ``torch.optim.SGD`` with dampening 0 and no Nesterov). Every variable is decayed,
    biases and batch-norm parameters included, as in the reference.

    Args:
        learning_rate: float or schedule. Defaults to 0.01.
        momentum: float in [0, 1). Defaults to 0.0.
        coupled_weight_decay: float >= 0. L2 coefficient added to the gradient. Defaults to 0.0.
        **kwargs: `keras.optimizers.Optimizer` arguments (``clipvalue``, ``name``, ...) except
            ``weight_decay``, which Keras applies decoupled.
    """

    def __init__(self, learning_rate=0.01, momentum: float = 0.0,
                 coupled_weight_decay: float = 0.0, **kwargs):
        if kwargs.get("weight_decay") is not None:
            raise ValueError("TorchSGD decays through coupled_weight_decay (PyTorch's L2); "
                             f"Received: weight_decay={kwargs['weight_decay']}")
        super().__init__(learning_rate=learning_rate, **kwargs)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1). Received: momentum={momentum}")
        if coupled_weight_decay < 0:
            raise ValueError("coupled_weight_decay must be >= 0. "
                             f"Received: coupled_weight_decay={coupled_weight_decay}")
        self.momentum = float(momentum)
        self.coupled_weight_decay = float(coupled_weight_decay)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.momentums = (self.add_optimizer_variables(variables, "momentum")
                          if self.momentum else [])

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        if self.coupled_weight_decay:
            gradient = gradient + ops.cast(self.coupled_weight_decay, variable.dtype) * variable
        if not self.momentum:
            self.assign_sub(variable, learning_rate * gradient)
            return
        buffer = self.momentums[self._get_variable_index(variable)]
        self.assign(buffer, ops.cast(self.momentum, variable.dtype) * buffer + gradient)
        self.assign_sub(variable, learning_rate * buffer)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum,
                "coupled_weight_decay": self.coupled_weight_decay}


@keras.saving.register_keras_serializable(package="tfcovid")
class Lookahead(keras.optimizers.Optimizer):
    """Lookahead (Zhang et al., NeurIPS 2019) around any Keras optimizer, as SSInfNet (spec 8.2).

    After every inner step, when the step counter ``c`` (inner steps since the last `reset`)
    is a multiple of ``sync_period``: the slow weights move towards the fast ones,
    ``slow <- slow + slow_step_size (fast - slow)``, and the fast weights take their value,
    ``fast <- slow``. As in the reference the slow weights are initialised lazily, to the fast
    weights after the first inner step (``c = 0``), so that synchronisation is a no-op and the
    real ones happen after inner steps 6, 11, 16, ... (``sync_period=5``).

    The learning rate, clipping and step count (``iterations``) are the inner optimizer's.

    Args:
        inner_optimizer: `keras.optimizers.Optimizer`. The fast optimizer (Adam for the single
            model, SGD for the multi-class one).
        sync_period: int >= 1. Inner steps between synchronisations (k). Defaults to 5.
        slow_step_size: float in (0, 1]. Slow-weight step (alpha). Defaults to 0.5.
        name: str or None. Defaults to None.
    """

    def __init__(self, inner_optimizer: keras.optimizers.Optimizer, sync_period: int = 5,
                 slow_step_size: float = 0.5, name: str | None = None):
        super().__init__(learning_rate=0.0, name=name)
        if not isinstance(inner_optimizer, keras.optimizers.Optimizer):
            raise TypeError("inner_optimizer must be a keras.optimizers.Optimizer. "
                            f"Received: inner_optimizer={inner_optimizer!r}")
        if int(sync_period) != sync_period or sync_period < 1:
            raise ValueError(
                f"sync_period must be an int >= 1. Received: sync_period={sync_period}")
        if not 0.0 < slow_step_size <= 1.0:
            raise ValueError(f"slow_step_size must be in (0, 1]. "
                             f"Received: slow_step_size={slow_step_size}")
        self.inner_optimizer = inner_optimizer
        self.sync_period = int(sync_period)
        self.slow_step_size = float(slow_step_size)

    def build(self, var_list):
        if self.built:
            return
        self.step_counter = self.add_variable(shape=(), dtype="int", initializer="zeros",
                                              aggregation="only_first_replica",
                                              name="lookahead_step")
        self.slow_weights = self.add_optimizer_variables(var_list, "slow")
        self.inner_optimizer.build(var_list)
        super().build(var_list)

    @property
    def variables(self):
        return self._variables + self.inner_optimizer.variables

    @property
    def learning_rate(self):
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate):
        self.inner_optimizer.learning_rate = learning_rate

    @property
    def iterations(self):
        return self.inner_optimizer.iterations

    def scale_loss(self, loss):
        return self.inner_optimizer.scale_loss(loss)

    def apply(self, grads, trainable_variables=None):
        if trainable_variables is None:
            if not self.built:
                raise ValueError("Lookahead.apply needs trainable_variables before it is built.")
            trainable_variables = self._trainable_variables
        trainable_variables = list(trainable_variables)
        if not self.built:
            with keras.name_scope(self.name, caller=self):
                self.build(trainable_variables)
        self.inner_optimizer.apply(grads, trainable_variables)
        # Slow and fast weights are both updated in cross-replica context (one value for all
        # replicas), as Keras updates variables under tf.distribute.
        tf.__internal__.distribute.interim.maybe_merge_call(
            self._synchronise, self._distribution_strategy, trainable_variables)
        self.step_counter.assign_add(1)

    def _synchronise(self, distribution, trainable_variables):
        counter = ops.convert_to_tensor(self.step_counter)
        due = ops.equal(counter % self.sync_period, 0)
        first = ops.equal(counter, 0)

        def move(fast, slow):
            target = ops.where(first, fast, slow + self.slow_step_size * (fast - slow))
            slow.assign(target)
            fast.assign(target)

        def synchronise():
            for fast in trainable_variables:
                slow = self.slow_weights[self._get_variable_index(fast)]
                distribution.extended.update(_tf_variable(fast), move, args=(_tf_variable(slow),),
                                             group=False)

        ops.cond(due, synchronise, lambda: None)

    def reset(self) -> None:
        """Start afresh as a new Lookahead would: the next step re-initialises the slow weights.

        The inner optimizer's state is kept, as when the reference re-creates its Lookahead
        around the same Adam at every epoch.
        """
        if self.built:
            self.step_counter.assign(0)

    def finalize_variable_values(self, var_list):
        self.inner_optimizer.finalize_variable_values(var_list)

    def get_config(self):
        return {"name": self.name,
                "inner_optimizer": keras.saving.serialize_keras_object(self.inner_optimizer),
                "sync_period": self.sync_period, "slow_step_size": self.slow_step_size}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        inner = keras.saving.deserialize_keras_object(config.pop("inner_optimizer"),
                                                      custom_objects=custom_objects)
        return cls(inner, **config)


def _tf_variable(variable):
    return variable.value if isinstance(variable, keras.Variable) else variable


class LookaheadReset(keras.callbacks.Callback):
    """Calls `Lookahead.reset` at the start of every epoch (``reset_each_epoch``, spec 8.2).

    The single Inf-Net fine-tuning re-creates its Lookahead every epoch: slow weights and
    counter restart, so each epoch synchronises after its inner steps 6, 11, 16, ...
    """

    def on_epoch_begin(self, epoch, logs=None):
        if not isinstance(self.model.optimizer, Lookahead):
            raise ValueError("LookaheadReset needs a Lookahead optimizer. "
                             f"Received: optimizer={self.model.optimizer!r}")
        self.model.optimizer.reset()


class _EpochSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """A learning rate set per epoch: ``epoch = first_epoch + step // steps_per_epoch``."""

    def __init__(self, steps_per_epoch: int, first_epoch: int):
        if int(steps_per_epoch) != steps_per_epoch or steps_per_epoch < 1:
            raise ValueError("steps_per_epoch must be an int >= 1. "
                             f"Received: steps_per_epoch={steps_per_epoch}")
        self.steps_per_epoch, self.first_epoch = int(steps_per_epoch), int(first_epoch)

    def __call__(self, step):
        epoch = self.first_epoch + ops.floor_divide(ops.cast(step, "int64"), self.steps_per_epoch)
        return self.at_epoch(epoch)

    def at_epoch(self, epoch):
        """The learning rate during ``epoch`` (the reference's numbering), float32."""
        raise NotImplementedError

    def get_config(self):
        return {"steps_per_epoch": self.steps_per_epoch, "first_epoch": self.first_epoch}


@keras.saving.register_keras_serializable(package="tfcovid")
class StepDecay(_EpochSchedule):
    """Intended Inf-Net decay: ``base * decay_rate ** floor(epoch / decay_epochs)`` (spec 4.4).

    Args:
        steps_per_epoch: int >= 1. Optimizer steps per epoch (three per batch with multi-scale
            training).
        base_learning_rate: float. Defaults to 1e-4.
        decay_rate: float. Defaults to 0.1.
        decay_epochs: int >= 1. Defaults to 50.
        first_epoch: int. Number of the first epoch; the reference counts from 1, so its
            epoch 50, the 50th, already runs at ``base * 0.1``. Defaults to 1.
    """

    def __init__(self, steps_per_epoch: int, base_learning_rate: float = 1e-4,
                 decay_rate: float = 0.1, decay_epochs: int = 50, first_epoch: int = 1):
        super().__init__(steps_per_epoch, first_epoch)
        if decay_epochs < 1:
            raise ValueError(f"decay_epochs must be >= 1. Received: decay_epochs={decay_epochs}")
        self.base_learning_rate, self.decay_rate = float(base_learning_rate), float(decay_rate)
        self.decay_epochs = int(decay_epochs)

    def at_epoch(self, epoch):
        decays = ops.floor_divide(epoch, self.decay_epochs)
        return self.base_learning_rate * ops.power(self.decay_rate, ops.cast(decays, "float32"))

    def get_config(self):
        return {**super().get_config(), "base_learning_rate": self.base_learning_rate,
                "decay_rate": self.decay_rate, "decay_epochs": self.decay_epochs}


@keras.saving.register_keras_serializable(package="tfcovid")
class CompoundingStepDecay(StepDecay):
    """As-run Inf-Net decay: each epoch ``e`` multiplies the current rate by ``decay_rate **
    floor(e / decay_epochs)`` (spec 4.4), so the factors compound.

    During epoch ``e`` the rate is ``base * decay_rate ** S(e)`` with ``S(e) = sum_{j=1}^{e}
    floor(j / d) = d q (q - 1) / 2 + q (r + 1)``, ``q = floor(e / d)``, ``r = e mod d``: with the
    defaults 1e-4 up to epoch 49, 1e-5 at 50, 1e-6 at 51, 1e-54 at 99 (0 in float32). Same
    arguments as `StepDecay`.
    """

    def at_epoch(self, epoch):
        quotient = ops.floor_divide(epoch, self.decay_epochs)
        remainder = epoch - quotient * self.decay_epochs
        decays = self.decay_epochs * quotient * (quotient - 1) // 2 + quotient * (remainder + 1)
        return self.base_learning_rate * ops.power(self.decay_rate, ops.cast(decays, "float32"))


@keras.saving.register_keras_serializable(package="tfcovid")
class PiecewiseConstantByEpoch(_EpochSchedule):
    """A rate per epoch interval: ``values[i]`` from epoch ``boundaries[i - 1]`` on.

    Defaults to the SSInfNet pre-training table (spec 7.9, round 0): 0.1 for epochs 0-39, 0.01
    for 40-79, 0.001 for 80-89, 0.0001 from 90.

    Args:
        steps_per_epoch: int >= 1. Optimizer steps per epoch.
        boundaries: increasing ints. Epochs where the next value starts. Defaults to
            (40, 80, 90).
        values: floats, one more than ``boundaries``. Defaults to (0.1, 0.01, 0.001, 0.0001).
        first_epoch: int. Number of the first epoch (the pre-training loop counts from 0).
            Defaults to 0.
    """

    def __init__(self, steps_per_epoch: int, boundaries=PRETRAINING_BOUNDARIES,
                 values=PRETRAINING_VALUES, first_epoch: int = 0):
        super().__init__(steps_per_epoch, first_epoch)
        boundaries, values = tuple(int(b) for b in boundaries), tuple(float(v) for v in values)
        if len(values) != len(boundaries) + 1 or list(boundaries) != sorted(set(boundaries)):
            raise ValueError("boundaries must increase and values have one more entry. "
                             f"Received: boundaries={boundaries}, values={values}")
        self.boundaries, self.values = boundaries, values

    def at_epoch(self, epoch):
        if not self.boundaries:
            return ops.convert_to_tensor(self.values[0], "float32")
        passed = ops.sum(ops.cast(ops.greater_equal(epoch, ops.convert_to_tensor(
            self.boundaries, "int64")), "int32"))
        return ops.take(ops.convert_to_tensor(self.values, "float32"), passed)

    def get_config(self):
        return {**super().get_config(), "boundaries": list(self.boundaries),
                "values": list(self.values)}
