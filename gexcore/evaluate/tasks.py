"""What the protocol needs to know per task: targets, heads, scores and extras."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData

from gexcore.data.rules import MIN_CLASS_SIZE, check_columns, labelled_rows, survival_rows

__all__ = ["ClassificationTask", "SurvivalTask"]


class ClassificationTask:
    """Predict `obs[label]`; scored by accuracy, macro-F1 and balanced accuracy."""

    name = "classification"

    def __init__(self, label: str, *, min_class_size: int = MIN_CLASS_SIZE):
        self.label, self.min_class_size = label, min_class_size

    def check(self, adata: AnnData) -> None:
        check_columns(adata.obs, {"label": self.label})

    def labelled(self, adata: AnnData) -> AnnData:
        """Rows with a label, in classes with at least `min_class_size` samples."""
        keep, _ = labelled_rows(adata.obs, self.label, min_class_size=self.min_class_size)
        return adata[keep].copy()

    def strata(self, adata: AnnData) -> np.ndarray:
        return adata.obs[self.label].astype(str).to_numpy()

    def describe(self, adata: AnnData) -> dict:
        return {"label": self.label,
                "classes": adata.obs[self.label].astype(str).value_counts().to_dict()}

    def fit_linear(self, F: np.ndarray, train: AnnData, rows: np.ndarray):
        from gexcore.tasks.classification import linear_probe
        return linear_probe().fit(F[rows], self.strata(train)[rows])

    def fit_finetune(self, encoder, X: np.ndarray, train: AnnData, rows: np.ndarray,
                     config, seed: int):
        from gexcore.tasks.classification import FineTuneClassifier
        return FineTuneClassifier(encoder=encoder, epochs=config.finetune_epochs,
                                  lr=config.finetune_lr, seed=seed).fit(
            X[rows], self.strata(train)[rows])

    def score(self, model, X_test: np.ndarray, train: AnnData,
              test: AnnData) -> tuple[dict, pd.DataFrame]:
        from gexcore.tasks.metrics import classification_metrics
        proba = model.predict_proba(X_test)
        classes = [str(c) for c in model.classes_]
        m = classification_metrics(self.strata(test), proba, classes)
        pred = pd.DataFrame(proba, columns=[f"p({c})" for c in classes])
        pred.insert(0, "sample", test.obs_names.to_numpy())
        pred.insert(1, "true", self.strata(test))
        pred.insert(2, "predicted", np.asarray(classes)[proba.argmax(axis=1)])
        return {k: m[k] for k in ("accuracy", "macro_f1", "balanced_accuracy")}, pred

    def extras(self, model, X_train: np.ndarray, X_test: np.ndarray, train: AnnData,
               test: AnnData) -> dict:
        from gexcore.tasks.metrics import classification_metrics
        classes = [str(c) for c in model.classes_]
        m = classification_metrics(self.strata(test), model.predict_proba(X_test), classes)
        return {"confusion": m["confusion"], "classes": m["classes"], "per_class": m["per_class"]}


class SurvivalTask:
    """Predict a risk score from `obs[time]`, `obs[event]`; Harrell and Uno C on test rows."""

    name = "survival"

    def __init__(self, time: str, event: str, *, penalizer: float = 1.0,
                 groups: str = "median", time_unit: str = ""):
        self.time, self.event, self.penalizer = time, event, penalizer
        self.groups, self.time_unit = groups, time_unit

    def check(self, adata: AnnData) -> None:
        check_columns(adata.obs, {"time": self.time, "event": self.event})

    def labelled(self, adata: AnnData) -> AnnData:
        """Rows with a positive time and a 0/1 event; refuses a cohort without events."""
        keep, t, e = survival_rows(adata.obs, self.time, self.event)
        out = adata[keep].copy()
        out.obs[self.time] = t[keep]
        out.obs[self.event] = e[keep]
        return out

    def arrays(self, adata: AnnData) -> tuple[np.ndarray, np.ndarray]:
        return (adata.obs[self.time].to_numpy(float), adata.obs[self.event].to_numpy(int))

    def strata(self, adata: AnnData) -> np.ndarray:
        return self.arrays(adata)[1].astype(str)

    def describe(self, adata: AnnData) -> dict:
        time, event = self.arrays(adata)
        return {"time": self.time, "event": self.event, "events": int(event.sum()),
                "median_time": float(np.median(time)), "time_unit": self.time_unit}

    def fit_linear(self, F: np.ndarray, train: AnnData, rows: np.ndarray):
        from gexcore.tasks.survival import CoxHead, survival_target
        return CoxHead(penalizer=self.penalizer).fit(F[rows], survival_target(
            *(a[rows] for a in self.arrays(train))))

    def fit_finetune(self, encoder, X: np.ndarray, train: AnnData, rows: np.ndarray,
                     config, seed: int):
        from gexcore.tasks.cox_finetune import FineTuneCox
        from gexcore.tasks.survival import survival_target
        return FineTuneCox(encoder=encoder, epochs=config.finetune_epochs,
                           lr=config.finetune_lr, seed=seed).fit(
            X[rows], survival_target(*(a[rows] for a in self.arrays(train))))

    def score(self, model, X_test: np.ndarray, train: AnnData,
              test: AnnData) -> tuple[dict, pd.DataFrame]:
        from gexcore.tasks.metrics import survival_scores
        risk = model.predict_risk(X_test)
        time, event = self.arrays(test)
        scores = survival_scores(time, event, risk, *self.arrays(train))
        pred = pd.DataFrame({"sample": test.obs_names.to_numpy(), "time": time,
                             "event": event, "risk": risk})
        return scores, pred

    def extras(self, model, X_train: np.ndarray, X_test: np.ndarray, train: AnnData,
               test: AnnData) -> dict:
        """Risk groups cut on the training risks, Kaplan-Meier and log-rank on the test rows."""
        from gexcore.tasks.survival import RiskGroups, km_summary
        train_risk = model.predict_risk(X_train)
        groups = RiskGroups(scheme=self.groups).fit(train_risk)
        time, event = self.arrays(test)
        km = km_summary(time, event, groups.assign(model.predict_risk(X_test)), groups.names_,
                        time_unit=self.time_unit)
        return {"thresholds": [float(t) for t in groups.thresholds_],
                "logrank_p": km.logrank_p,
                "hazard_ratios": [hr.__dict__ for hr in km.hazard_ratios]}
