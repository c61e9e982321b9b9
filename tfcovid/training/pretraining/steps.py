"""The two optimisation steps of SSInfNet's pre-training (spec 7.4, 7.7, 7.8).

Network step (the inpainter learns, the coach is frozen in inference mode): the masks are the
coach's binary top-k masks, or random 16 x 16 blocks keeping as many cells before any coach
phase; the inpainter sees ``x * m`` (multi: ``[x * m, prior * m]``) and minimises
``0.99 L_rec + 0.01 L_con`` (`tfcovid.losses.inpainting`) with SGD.

Coach step (the coach learns, the inpainter is in inference mode and not updated): soft masks
``sigmoid(alpha (B - tau))`` with alpha = ``coach_sharpness``; the coach minimises
``1 - rec + kl_weight KL``, i.e. maximises the inpainter's error on the erased region. Single
model: gradients reach the coach through the masked input and the (1 - m) weights; multi: the
inpainter's output is detached, so only through the weights, as the reference.

Both steps report the erased fraction of the binary masks (1 - keep_fraction when the cells
divide evenly); parameters without a gradient (Inf-Net's ``ra2`` and edge heads, which the
reconstruction does not reach) are left alone, as PyTorch's SGD leaves them, weight decay
included.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfcovid import inference
from tfcovid.config import PretrainConfig
from tfcovid.data import transforms
from tfcovid.losses import inpainting as losses
from tfcovid.models.ssinfnet import coach as coach_lib
from tfcovid.models.ssinfnet import masks
from tfcovid.training import optimizers
from tfcovid.training.pretraining import inputs

VALIDATION_MASK_SEED = 1234  # one fixed set of random block masks for every validation


class Pretrainer:
    """The inpainter, the coach, their optimizers and the two steps.

    Args:
        inpainter: the single (``InfNetInpainting``: dict with the five reconstructions) or
            multi (``UNetInpainting``: "reconstruction" of image and prior) inpainting
            network.
        coach: the ``CoachNetwork``, taking the 3-channel network input.
        config: the pre-training settings.
        prior_network: frozen single-class network whose min-max-normalised map is the multi
            model's prior when the batches carry none. Defaults to None.
        prior_normalisation: "unit" or "imagenet", how ``prior_network`` expects its images.
            Defaults to "imagenet".
        seed: int. Seeds the random block masks. Defaults to 0.

    Batches are dicts with "image" (batch, height, width, 3) in [0, 1] and, for the multi
    model, optionally "prior" of the same shape in [0, 1]; height and width multiples of 16.
    """

    def __init__(self, inpainter: keras.Model, coach: keras.Model, config: PretrainConfig, *,
                 prior_network: keras.Model | None = None,
                 prior_normalisation: str = "imagenet", seed: int = 0):
        self.inpainter, self.coach, self.config = inpainter, coach, config
        self.multi = "reconstruction" in inpainter.output
        self.prior_network, self.prior_normalisation = prior_network, prior_normalisation
        if prior_network is not None:
            prior_network.trainable = False
        self.network_optimizer = optimizers.TorchSGD(
            config.network_learning_rates[0], momentum=config.momentum,
            coupled_weight_decay=config.weight_decay)
        self.coach_optimizer = optimizers.adam(config.coach_learning_rate, clipvalue=None)
        self.network_optimizer.build(inpainter.trainable_variables)
        self.coach_optimizer.build(coach.trainable_variables)
        self.mask_seeds = keras.random.SeedGenerator(seed, name="mask_seeds")

    def checkpointables(self) -> dict:
        """The state a checkpoint must hold: networks (every variable listed, see
        `tfcovid.training.engine.network_state`), optimizers and the states of the mask and
        coach samplers, for ``tf.train.Checkpoint(**checkpointables())``."""
        return {"inpainter": self.inpainter, "coach": self.coach,
                "inpainter_variables": list(self.inpainter.weights),
                "coach_variables": list(self.coach.weights),
                "network_optimizer": self.network_optimizer,
                "coach_optimizer": self.coach_optimizer, "mask_seeds": self.mask_seeds.state,
                "coach_sampler": self.coach.sampler.state}

    def prepare(self, batch: dict) -> dict:
        """Network input and targets of a batch.

        Returns:
            dict of float32 tensors: "input" x and "target" y (batch, height, width, 3);
            multi model also "prior_input" and "prior_target".
        """
        image = batch["image"]
        prepared = {"input": inputs.network_input(image),
                    "target": inputs.reconstruction_target(image)}
        if self.multi:
            prior = batch.get("prior")
            if prior is None:
                prior = self._model_prior(image)
            prepared["prior_input"], prepared["prior_target"] = inputs.prior_input_and_target(
                prior, self.config.prior_scaling)
        return prepared

    def _model_prior(self, image):
        if self.prior_network is None:
            raise ValueError("the multi-class inpainter needs a prior: batches with 'prior' or "
                             "a prior_network. Received: neither")
        network_images = transforms.model_input_tf(image[..., :1], 3, self.prior_normalisation)
        probability = inference.min_max_normalise(
            inference.infection_probability(self.prior_network, network_images))
        return transforms.model_input_tf(probability, 3, "unit")

    def masked_input(self, prepared: dict, mask):
        """The inpainter's input: x * m, and for the multi model [x * m, prior * m]."""
        masked = masks.apply_mask(prepared["input"], mask)
        if self.multi:
            masked = tf.concat([masked, masks.apply_mask(prepared["prior_input"], mask)], -1)
        return masked

    def terms(self, outputs: dict, prepared: dict, mask) -> dict:
        """L_rec and L_con of the inpainter's outputs (spec 7.7)."""
        if self.multi:
            return losses.multi_inpainting_terms(outputs["reconstruction"], prepared["target"],
                                                 prepared["prior_target"], mask)
        return losses.inpainting_terms(outputs, prepared["target"], mask)

    def loss(self, terms: dict):
        """0.99 L_rec + 0.01 L_con, with the configured weights."""
        return losses.inpainting_loss(terms, self.config.reconstruction_weight,
                                      self.config.context_weight)

    def coach_masks(self, network_input, binary: bool = True) -> dict:
        """The coach's masks of a batch: "mask" (binary, or soft with ``coach_sharpness``)
        and the coach's "mu" and "log_var"."""
        outputs = self.coach(network_input, training=not binary)
        mask = masks.coach_mask(outputs["score"], self.config.keep_fraction,
                                alpha=self.config.coach_sharpness, binary=binary)
        return {"mask": mask, "mu": outputs["mu"], "log_var": outputs["log_var"],
                "score": outputs["score"]}

    def random_masks(self, network_input, seed=None):
        """Random block masks keeping the coach's number of cells (spec 7.4, item 7)."""
        shape = tf.shape(network_input)
        return masks.random_block_mask((shape[0], network_input.shape[1],
                                        network_input.shape[2]), self.config.keep_fraction,
                                       seed=self.mask_seeds if seed is None else seed)

    def network_step(self, batch: dict, coach_masks: bool) -> dict:
        """One SGD step of the inpainter.

        Args:
            batch: a training batch.
            coach_masks: bool. Masks from the coach (binary), else random blocks.

        Returns:
            dict of float32 scalars: "loss", "reconstruction", "context", "fraction_erased".
        """
        prepared = self.prepare(batch)
        mask = (self.coach_masks(prepared["input"])["mask"] if coach_masks
                else self.random_masks(prepared["input"]))
        masked = self.masked_input(prepared, mask)
        variables = self.inpainter.trainable_variables
        with tf.GradientTape() as tape:
            terms = self.terms(self.inpainter(masked, training=True), prepared, mask)
            loss = self.loss(terms)
        optimizers.apply_reached(self.network_optimizer, tape.gradient(loss, variables),
                                 variables)
        return {"loss": loss, **terms, "fraction_erased": 1.0 - tf.reduce_mean(mask)}

    def coach_objective(self, prepared: dict) -> dict:
        """The coach's loss on a prepared batch, differentiable in the coach's weights.

        Returns:
            dict of float32 scalars: "coach_loss", "reconstruction" (the rec term on the soft
            masks), "kl", "fraction_erased" (of the binary masks).
        """
        coach = self.coach_masks(prepared["input"], binary=False)
        mask = coach["mask"]
        outputs = self.inpainter(self.masked_input(prepared, mask), training=False)
        if self.multi:
            reconstruction = losses.multi_coach_reconstruction(
                outputs["reconstruction"], prepared["target"], prepared["prior_target"], mask)
        else:
            reconstruction = losses.inpainting_terms(outputs, prepared["target"],
                                                     mask)["reconstruction"]
        kl = coach_lib.coach_kl(coach["mu"], coach["log_var"])
        binary = masks.coach_mask(tf.stop_gradient(coach["score"]), self.config.keep_fraction,
                                  binary=True)
        return {"coach_loss": losses.coach_loss(reconstruction, kl, self.config.kl_weight),
                "reconstruction": reconstruction, "kl": kl,
                "fraction_erased": 1.0 - tf.reduce_mean(binary)}

    def coach_step(self, batch: dict) -> dict:
        """One Adam step of the coach; returns ``coach_objective``'s terms before the step."""
        prepared = self.prepare(batch)
        variables = self.coach.trainable_variables
        with tf.GradientTape() as tape:
            objective = self.coach_objective(prepared)
        gradients = tape.gradient(objective["coach_loss"], variables)
        self.coach_optimizer.apply_gradients(zip(gradients, variables))
        return objective

    def validation_terms(self, batch: dict) -> dict:
        """The inpainter's loss terms on a batch under fixed random block masks, the same for
        every call, so values compare across epochs and rounds."""
        prepared = self.prepare(batch)
        mask = self.random_masks(prepared["input"], seed=VALIDATION_MASK_SEED)
        outputs = self.inpainter(self.masked_input(prepared, mask), training=False)
        terms = self.terms(outputs, prepared, mask)
        return {"loss": self.loss(terms), **terms, "mask": mask, "outputs": outputs,
                "prepared": prepared}

    def restart_network_optimizer(self, learning_rate: float) -> None:
        """Sets the SGD learning rate and zeroes its momentum (a re-created optimizer)."""
        self.network_optimizer.learning_rate.assign(learning_rate)
        for buffer in self.network_optimizer.momentums:
            buffer.assign(tf.zeros_like(buffer))

    def restart_coach_optimizer(self) -> None:
        """Zeroes the coach's Adam moments and step count (re-created every coach phase)."""
        for variable in self.coach_optimizer.variables:
            if variable is not self.coach_optimizer.learning_rate:
                variable.assign(tf.zeros_like(variable))
