"""Signs that a GAN run has stopped learning, checked at each evaluation: a discriminator
that wins outright (``d_overpowers``) or samples that have lost their variety
(``mode_collapse``). Either ends the run with ``Diverged(reason=...)``, like non-finite
values do, so a Tune trial frees its workers instead of burning its budget.

Every rank must reach the same verdict (a rank that stops alone hangs the others): the
losses it reads are the all-reduced means the loop logs, and evaluation results are
broadcast from rank 0."""

from __future__ import annotations

from pipelines.config.schema import StabilityConfig
from pipelines.core.guard import Diverged


class StabilityMonitor:
    """``d_losses`` and ``g_losses``: the logged losses of the GAN's discriminator and
    generator groups (``GAN.loss_keys``), summed per role."""

    def __init__(
        self, cfg: StabilityConfig, d_losses: tuple[str, ...] = ("loss/D",), g_losses: tuple[str, ...] = ("loss/G",)
    ):
        self.cfg, self.d_losses, self.g_losses = cfg, d_losses, g_losses
        self.losses: list[tuple[float, float]] = []  # (D's loss, G's loss) at each evaluation
        self.peak_diversity = 0.0
        self.low_diversity = 0  # evaluations in a row below cfg.collapse_ratio x the peak

    def check(self, step: int, logged: dict[str, float], evaluated: dict[str, float]) -> None:
        """Raise ``Diverged`` with a reason if the run is beyond saving."""
        if all(k in logged for k in (*self.d_losses, *self.g_losses)):
            self.losses.append((sum(logged[k] for k in self.d_losses), sum(logged[k] for k in self.g_losses)))
            self._check_d_overpowers(step)
        if "eval/diversity" in evaluated:
            self._check_collapse(step, evaluated["eval/diversity"])

    def _check_d_overpowers(self, step: int) -> None:
        """D at its floor at each of the last k evaluations while G's loss rose over them
        (compared with the evaluation before: single readings are too noisy to need a
        rise at every one)."""
        k = self.cfg.patience
        recent = self.losses[-(k + 1) :]
        if len(recent) < k + 1:
            return
        d_at_floor = all(d < self.cfg.d_loss_below for d, _ in recent[1:])
        if d_at_floor and recent[-1][1] > recent[0][1]:
            d, g = recent[-1]
            raise Diverged(
                f"d_overpowers: at step {step} {'+'.join(self.d_losses)} = {d:.4f}, below {self.cfg.d_loss_below} "
                f"for {k} evaluations, while {'+'.join(self.g_losses)} rose from {recent[0][1]:.4f} to {g:.4f}; lower "
                "optim.lr_d relative to optim.lr_g",
                reason="d_overpowers",
            )

    def _check_collapse(self, step: int, diversity: float) -> None:
        """Diversity fell below a fraction of the best it reached: an untrained generator has
        little variety too, so only a fall from a higher level is a collapse."""
        self.peak_diversity = max(self.peak_diversity, diversity)
        low = diversity < self.cfg.collapse_ratio * self.peak_diversity
        self.low_diversity = self.low_diversity + 1 if low else 0
        if self.low_diversity >= self.cfg.patience:
            raise Diverged(
                f"mode_collapse: at step {step} eval/diversity = {diversity:.3f}, below "
                f"{self.cfg.collapse_ratio} x its best ({self.peak_diversity:.3f}) for {self.low_diversity} "
                "evaluations in a row: the samples have lost their variety",
                reason="mode_collapse",
            )
