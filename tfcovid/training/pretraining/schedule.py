"""The alternating schedule of SSInfNet's pre-training (spec 7.9): phases and learning rates.

A schedule is a sequence of rounds; each round has a network phase (the inpainter learns on
masked images) and, except perhaps round 0, a coach phase (the coach learns harder masks),
in the configured order. A network phase before any coach phase has finished uses random block
masks (spec 7.4, item 7), since no coach has learnt anything yet.

Example (the paper's 2000 epochs, then the reference code's single-model run):

>>> from tfcovid.config import PretrainConfig
>>> paper = phases(PretrainConfig())
>>> [(p.round, p.kind, p.epochs, p.coach_masks) for p in paper[:3]]
[(0, 'network', 200, False), (0, 'coach', 200, False), (1, 'network', 100, True)]
>>> sum(p.epochs for p in paper)
2000
>>> as_run = phases(PretrainConfig(rounds=11, order="coach_first"))
>>> [(p.kind, p.epochs) for p in as_run[:3]], len(as_run)
([('coach', 200), ('network', 200), ('coach', 100)], 22)
>>> [network_learning_rate(PretrainConfig(), 0, epoch) for epoch in (0, 39, 40, 85, 99)]
[0.1, 0.1, 0.01, 0.001, 0.0001]
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from tfcovid.config import PretrainConfig

NETWORK, COACH = "network", "coach"


@dataclasses.dataclass(frozen=True)
class Phase:
    """One phase of the schedule.

    Attributes:
        index: int. Position in the schedule, from 0.
        round: int. Round, from 0.
        kind: "network" (the inpainter learns) or "coach" (the coach learns).
        epochs: int. Epochs of the phase.
        coach_masks: bool. Network phases: masks come from the coach (a coach phase has
            finished before), else random blocks. Always False for coach phases.
        first_epoch: int. Epochs of the schedule before this phase.
    """

    index: int
    round: int
    kind: Literal["network", "coach"]
    epochs: int
    coach_masks: bool
    first_epoch: int


def phases(config: PretrainConfig) -> tuple[Phase, ...]:
    """Every phase of the schedule of ``config``, in order."""
    kinds = []
    for round_index in range(config.rounds):
        round_kinds = [NETWORK, COACH] if config.order == "network_first" else [COACH, NETWORK]
        if round_index == 0 and not config.first_round_coach:
            round_kinds.remove(COACH)
        kinds.extend((round_index, kind) for kind in round_kinds)
    result, first_epoch, coach_trained = [], 0, False
    for index, (round_index, kind) in enumerate(kinds):
        epochs = config.first_round_epochs if round_index == 0 else config.round_epochs
        result.append(Phase(index, round_index, kind, epochs,
                            kind == NETWORK and coach_trained, first_epoch))
        coach_trained = coach_trained or kind == COACH
        first_epoch += epochs
    return tuple(result)


def total_epochs(config: PretrainConfig) -> int:
    """Epochs of the whole schedule, both kinds of phase."""
    return sum(phase.epochs for phase in phases(config))


def network_learning_rate(config: PretrainConfig, round_index: int, epoch: int) -> float:
    """SGD learning rate of epoch ``epoch`` (from 0) of a network phase in round
    ``round_index``: the block of ``network_boundaries`` it falls in, or
    ``later_learning_rate`` after round 0 when set."""
    if round_index > 0 and config.later_learning_rate is not None:
        return config.later_learning_rate
    block = sum(epoch >= boundary for boundary in config.network_boundaries)
    return config.network_learning_rates[block]


def restarts_momentum(config: PretrainConfig, epoch: int) -> bool:
    """Whether the SGD momentum starts from zero at epoch ``epoch`` (from 0) of a network
    phase: at the phase's start and at each learning-rate boundary, where the reference
    re-creates its optimizer."""
    return epoch == 0 or epoch in config.network_boundaries


def locate(config: PretrainConfig, epochs_done: int) -> tuple[Phase, int] | None:
    """The phase holding the next epoch after ``epochs_done`` finished ones, and that epoch's
    position in it (from 0); None when the schedule is complete."""
    for phase in phases(config):
        if epochs_done < phase.first_epoch + phase.epochs:
            return phase, epochs_done - phase.first_epoch
    return None
