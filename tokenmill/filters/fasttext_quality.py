"""Model-based quality: a fastText classifier's score for a label, kept as the document's
`quality_score`; documents below `min_score` go, as `quality:fasttext:low_score`.

    quality:
      fasttext_quality: {model_path: models/quality.bin, label: __label__hq, min_score: 0.5}
      filter_sets: {web: [basic, fasttext_quality]}

Any supervised fastText model works: one `tokenmill quality train` made (labels `__label__hq`
/ `__label__lq`), or DCLM's OH-2.5+ELI5 classifier (Hugging Face `mlfoundations/fasttext-oh-eli5`,
file `openhermes_reddit_eli5_vs_rw_v2_bigram_200k_train.bin`, about 2.4 GB; labels `__label__hq`
and `__label__cc`; DCLM-Baseline kept the top 10% of its pool by the `__label__hq` score, so
its useful thresholds are far below 0.5: read them off the report's histogram).

A document is scored whole, its newlines replaced by spaces (`one_line`, what training wrote
too). The score is the probability fastText reports for `label`: its softmax output plus
1e-5 (fastText keeps log(p + 1e-5)), so never below 1e-5, and clamped to 1 (a sure document
would score 1.00001); 0 when the model gives no prediction at all. The label must be one of
the model's (checked when it loads).

The model loads once per worker process, on first use (`load_model`, cached by path), so the
rule Dask ships stays small. fastText 0.9.2's Python wrapper cannot score here as it is:
`FastText.predict` on one string builds `np.array(probs, copy=False)`, which NumPy 2 refuses
(NeMo Curator #1482), and its list form (`multilinePredict`) gives every label past the first
the first one's probability. So `scores` calls the binding's one-line `predict` (`model.f`)
for every label (k = -1), which returns plain (probability, label) pairs, no NumPy involved.
"""

from __future__ import annotations

import os
from typing import ClassVar

from pydantic import Field, field_validator

from tokenmill.filters.base import Filter, RuleParams, Verdict

KEY = "quality.fasttext_quality"  # the config section, named in errors
_MODELS: dict[str, object] = {}  # path -> model, one per worker process


def one_line(text: str) -> str:
    """The text as fastText reads one example: newlines replaced by spaces, ending in "\\n"."""
    return text.replace("\n", " ").replace("\r", " ") + "\n"


def load_model(path: str):
    """The fastText model at `path`, loaded once per process."""
    model = _MODELS.get(path)
    if model is None:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{KEY}.model_path: {path} not found")
        # (not fasttext.load_model: the full package's prints a warning on every load)
        from fasttext.FastText import _FastText

        try:
            model = _FastText(model_path=path)
        except ValueError as e:  # fastText's own words: "... has wrong file format!"
            raise ValueError(f"{KEY}.model_path: {path} is not a fastText model ({e})") from None
        _MODELS[path] = model
    return model


def label_scores(model, texts: list[str], label: str) -> list[float]:
    """Per text, the model's probability for `label` (see the module docstring)."""
    predict = model.f.predict
    out = []
    for text in texts:
        score = 0.0
        for prob, name in predict(one_line(text), -1, 0.0, "replace"):
            if name == label:
                score = min(float(prob), 1.0)
                break
        out.append(score)
    return out


def _labels(model) -> list[str] | None:
    """The model's labels (None where the binding cannot list them: fasttext-predict's)."""
    try:
        return list(model.f.getLabels("replace")[0])
    except AttributeError:
        return None


class FastTextQualityParams(RuleParams):
    """A fastText classifier's score for `label`; documents below `min_score` go."""

    path_fields: ClassVar[tuple[str, ...]] = ("model_path",)

    model_path: str | None = Field(
        None, description="a supervised fastText model (.bin / .ftz); required to run the rule"
    )
    label: str = Field("__label__hq", min_length=1, description="the label whose score counts")
    min_score: float = Field(0.5, ge=0, le=1, description="keep documents scoring at least this")

    @field_validator("label")
    @classmethod
    def _label(cls, v: str) -> str:
        if v != v.strip() or any(c.isspace() for c in v):
            raise ValueError(f"{v!r}: a fastText label has no spaces")
        return v


class FastTextQuality(Filter):
    """Removes documents whose score for `label` is below `min_score` (module docstring);
    scores every document it judges (`quality_score`)."""

    Params = FastTextQualityParams
    label = "fasttext"
    scored = True

    def setup(self) -> None:
        # The parameter `label` is the model's label (the base class reads the reason
        # namespace, "fasttext", from the class). The path is checked when the rule is built
        # (prepare builds the rules in use before any work), not when a worker first reads it.
        self.model_label = self.settings.label
        if self.model_path is None:
            raise ValueError(
                f"{KEY}.model_path is not set: train a classifier with `tokenmill quality "
                f"train` or give a downloaded one (README, section Model-based quality)"
            )
        if not os.path.isfile(self.model_path):
            raise FileNotFoundError(f"{KEY}.model_path: {self.model_path} not found")

    def model(self):
        """The classifier (loaded once per process), checked to have `label`."""
        model = load_model(self.model_path)
        labels = _labels(model)
        if labels is not None and self.model_label not in labels:
            raise ValueError(
                f"{KEY}.label: {self.model_label!r} is not a label of {self.model_path} "
                f"(it has {', '.join(labels)})"
            )
        return model

    def scores(self, texts: list[str]) -> list[float]:
        """Each text's score for the configured label."""
        return label_scores(self.model(), texts, self.model_label)

    def judge(self, texts: list[str], langs: list[str]) -> tuple[list[Verdict], list[float]]:
        scores = self.scores(texts)
        floor = self.min_score
        return [None if s >= floor else "low_score" for s in scores], scores
