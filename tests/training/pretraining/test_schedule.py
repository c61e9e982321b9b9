"""The alternating schedule: the paper's and the reference code's phase lists, learning rates."""

import pytest

from tfcovid.config import PretrainConfig
from tfcovid.training.pretraining import schedule


def _kinds(config):
    return [(phase.round, phase.kind, phase.epochs) for phase in schedule.phases(config)]


def test_paper_schedule_is_network_200_coach_200_then_alternating_100_for_2000_epochs():
    phases = schedule.phases(PretrainConfig())
    assert _kinds(PretrainConfig())[:4] == [(0, "network", 200), (0, "coach", 200),
                                            (1, "network", 100), (1, "coach", 100)]
    assert schedule.total_epochs(PretrainConfig()) == 2000
    # Random masks until a coach phase has finished, the coach's after.
    assert [phase.coach_masks for phase in phases if phase.kind == "network"] == [False] + [
        True] * 8
    assert [phase.first_epoch for phase in phases[:3]] == [0, 200, 400]


def test_reference_single_run_trains_the_coach_first_in_every_round():
    config = PretrainConfig(rounds=11, order="coach_first", later_learning_rate=1e-5)
    kinds = _kinds(config)
    assert kinds[:3] == [(0, "coach", 200), (0, "network", 200), (1, "coach", 100)]
    assert len(kinds) == 22 and schedule.total_epochs(config) == 2400  # 1200 + 1200 (7.9)
    assert all(phase.coach_masks for phase in schedule.phases(config) if phase.kind == "network")


def test_reference_multi_run_has_no_coach_phase_in_round_0():
    config = PretrainConfig(rounds=11, order="coach_first", first_round_coach=False)
    kinds = _kinds(config)
    assert kinds[:3] == [(0, "network", 200), (1, "coach", 100), (1, "network", 100)]
    assert sum(epochs for _, kind, epochs in kinds if kind == "coach") == 1000  # spec 7.9
    assert sum(epochs for _, kind, epochs in kinds if kind == "network") == 1200
    assert not schedule.phases(config)[0].coach_masks


def test_learning_rate_table_restarts_every_phase_unless_later_rounds_are_constant():
    paper, as_run = PretrainConfig(), PretrainConfig(later_learning_rate=1e-5)
    expected = {0: 0.1, 39: 0.1, 40: 0.01, 79: 0.01, 80: 0.001, 89: 0.001, 90: 0.0001,
                199: 0.0001}
    for epoch, rate in expected.items():
        assert schedule.network_learning_rate(paper, 0, epoch) == rate
        assert schedule.network_learning_rate(paper, 3, epoch) == rate
        assert schedule.network_learning_rate(as_run, 0, epoch) == rate
        assert schedule.network_learning_rate(as_run, 3, epoch) == 1e-5
    assert [epoch for epoch in range(100) if schedule.restarts_momentum(paper, epoch)] == [
        0, 40, 80, 90]


def test_locate_walks_the_schedule_and_ends():
    config = PretrainConfig(rounds=2, first_round_epochs=2, round_epochs=1)
    located = [schedule.locate(config, done) for done in range(6)]
    assert [(phase.kind, phase.round, epoch) for phase, epoch in located[:5]] == [
        ("network", 0, 0), ("network", 0, 1), ("coach", 0, 0), ("coach", 0, 1),
        ("network", 1, 0)]
    assert located[5][0].kind == "coach" and schedule.locate(config, 6) is None


@pytest.mark.parametrize("values, message", [
    ({"rounds": 0}, "rounds"), ({"network_boundaries": (40, 80)}, "network_learning_rates"),
    ({"network_boundaries": (80, 40, 90)}, "network_boundaries"),
    ({"keep_fraction": 1.0}, "keep_fraction"), ({"crop_size": 40}, "crop_size"),
    ({"coach_learning_rate": 0.0}, "coach_learning_rate")])
def test_bad_settings_name_the_key(values, message):
    with pytest.raises(ValueError, match=message):
        PretrainConfig(**values)
