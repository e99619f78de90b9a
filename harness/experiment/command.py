"""The one command that repeats an episode: ``harness run`` with its fault, phases, stack,
load and SLOs as flags. A report prints it beside each episode, so a failure in a game day
shrinks to one command a person can run again, alone, on a laptop."""

from __future__ import annotations

from harness.experiment.spec import DEFAULT_SLOS, EpisodeSpec, ExperimentSpec
from harness.stack.options import stack_flags


def _seconds(value: float) -> str:
    return f"{value:g}s"


def episode_command(spec: ExperimentSpec, episode: EpisodeSpec) -> list[str]:
    """The argv of ``harness run`` that runs ``episode`` alone on ``spec``'s stack and load."""
    argv = ["harness", "run", "--fault", episode.fault, "--target", episode.target]
    for key, value in sorted(episode.params.items()):
        argv += ["-p", f"{key}={value}"]
    argv += [
        "--baseline", _seconds(episode.baseline_s),
        "--hold", _seconds(episode.hold_s) if episode.hold_s else "0s",
        "--settle", _seconds(episode.settle_s),
        "--seed", str(episode.seed),
    ]  # fmt: skip
    if episode.recovery_timeout_s != EpisodeSpec().recovery_timeout_s:
        argv += ["--recovery-timeout", _seconds(episode.recovery_timeout_s)]
    argv += stack_flags(spec.stack)
    load = spec.load
    if load is None:
        argv.append("--no-load")
    else:
        argv += ["--load-profile", load.profile, "--load-model", load.model]
        argv += ["--rate", f"{load.rate_per_s:g}", "--users", str(load.users)]
        argv += ["--workers", str(load.workers)]
        if load.wait_ms:
            argv += ["--wait-ms", f"{load.wait_ms:g}"]
        if spec.load_at != "frontend":
            argv += ["--load-at", spec.load_at]
    if spec.probe_interval_s != ExperimentSpec().probe_interval_s:
        argv += ["--probe-interval-ms", f"{spec.probe_interval_s * 1000:g}"]
    if spec.slos != DEFAULT_SLOS:
        for slo in spec.slos:
            argv += ["--slo", str(slo)]
    for guard in spec.safeguards:
        argv += ["--abort-if", str(guard)]
    return argv
