"""What an evaluation runs (`EvalConfig`); import-light, so the app's forms read its defaults
without loading torch."""

from __future__ import annotations

from dataclasses import dataclass

from gexcore.config import FromDict

__all__ = ["ALL_FRACTIONS", "QUICK_EVAL", "EvalConfig"]

ALL_FRACTIONS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


@dataclass(frozen=True)
class EvalConfig(FromDict):
    """What `evaluate_cohort` runs; stored whole in the report and in an evaluate job's params."""

    methods: tuple[str, ...] = ("scarf", "vime", "byol", "transformer")
    fractions: tuple[float, ...] = ALL_FRACTIONS
    seeds: int = 3
    test_size: float = 0.2
    # As many as TrainConfig.epochs (a test pins the two), so a report scores the encoder that a
    # pretrain run with default settings builds.
    pretrain_epochs: int = 20
    finetune_epochs: int = 30
    finetune_lr: float = 1e-3
    finetune: bool = True               # also fine-tune each encoder end to end
    preset: str = "small"
    top_genes: int | None = None        # baselines and MLPs; the transformer defaults to 500
    n_pca: int = 50
    transductive: bool = False          # pretraining also sees the test samples (unlabelled)

    def __post_init__(self) -> None:
        object.__setattr__(self, "methods", tuple(self.methods))
        object.__setattr__(self, "fractions", tuple(sorted(float(f) for f in self.fractions)))
        if self.seeds < 1:
            raise ValueError(f"seeds must be at least 1, not {self.seeds}.")


# Where the app's evaluation form starts: one fast SSL method, three label fractions, two seeds
# take minutes on a CPU, where the full protocol on the demo cohort takes most of an hour.
QUICK_EVAL = EvalConfig(methods=("scarf",), fractions=(0.05, 0.2, 1.0), seeds=2)
