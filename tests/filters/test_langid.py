"""Language ID with the real lid.176 model against raw fastText on the same text."""

from __future__ import annotations

import fasttext
from tmfixtures import sample_docs

from tokenmill.filters.langid import LanguageId, bundled_model_path


def test_predictions_equal_raw_fasttext():
    oscar = sample_docs("oscar")
    docs = [r["content"] for r in oscar[::3]] + [r["text"] for r in sample_docs("c4")[:50]]
    raw = fasttext.load_model(bundled_model_path())
    langs, scores = LanguageId().predict(docs)
    expected = [raw.predict(d.replace("\n", " "), k=1) for d in docs]
    assert langs == [labels[0].removeprefix("__label__") for labels, _ in expected]
    for s, (_, probs) in zip(scores, expected, strict=True):
        assert abs(s - min(float(probs[0]), 1.0)) < 1e-6
    assert len(set(langs)) >= 10  # the sample is multilingual


def test_threshold_and_selection_reasons():
    fr = "Le chat est assis sur le tapis et regarde les oiseaux dans le jardin."
    en = "The cat sits on the mat and watches the birds in the garden outside."
    lid = LanguageId(languages=["en"], threshold=0.5)
    langs, scores, reasons = lid([fr, en])
    assert langs == ["fr", "en"]
    assert reasons == ["langid:language_not_selected", None]
    strict = LanguageId(threshold=0.5, thresholds={"en": 1.01})
    assert strict([fr, en])[2] == [None, "langid:below_threshold"]
