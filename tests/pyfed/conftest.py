"""Fixtures shared by the pyfed tests."""

import pytest

import pyfed.simulator as sim


@pytest.fixture
def run_interrupted(monkeypatch):
    """``run_interrupted(cfg, at)``: run ``cfg`` in the simulator with a Ctrl-C when 0-based round ``at``
    starts (the simulator checkpoints the last completed round); returns after the KeyboardInterrupt,
    with the simulator restored."""

    def run(cfg, at: int) -> None:
        real = sim._one_round

        def interrupted(fed, state, client_states, sampler, round_):
            if round_ == at:
                raise KeyboardInterrupt
            return real(fed, state, client_states, sampler, round_)

        with monkeypatch.context() as m:
            m.setattr(sim, "_one_round", interrupted)
            with pytest.raises(KeyboardInterrupt):
                sim.simulate(cfg, progress=False)

    return run
