"""Which run each route serves, and the errors that name their field (issue 25, items 10-11)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

import atento
from atento.errors import AtentoError
from atento.serve.app import create_app


def test_each_route_defaults_to_the_first_run_that_offers_it(lm_run, tf_run, bert_run):
    lm, mt, cls = atento.load(lm_run), atento.load(tf_run), atento.load(bert_run)
    with TestClient(create_app([lm, mt, cls])) as c:
        r = c.post("/v1/translate", json={"text": "9 april 1974"})  # the first run is an LM:
        assert r.status_code == 200 and r.json()["model"] == lm.name  # it continues the text
        r = c.post("/v1/sample", json={"prompt": "the", "max_new": 5})
        assert r.status_code == 200 and r.json()["model"] == lm.name
        texts = ["a good film", "a dull plot"]
        r = c.post("/v1/classify", json={"texts": texts})
        assert r.status_code == 200 and r.json()["model"] == cls.name
        assert [x["label"] for x in r.json()["labels"]] == [x.label for x in cls.classify(texts)]
        models = {m["name"]: m for m in c.get("/v1/models").json()["models"]}
        assert (models[cls.name]["layers"], models[cls.name]["heads"]) == (2, 2)  # a BERT
        assert models[mt.name]["search"] == {"beam": mt.run.cfg.search.beam,
                                             "alpha": mt.run.cfg.search.alpha,
                                             "nbest": mt.run.cfg.search.nbest}  # fmt: skip


def test_a_route_no_served_run_offers_says_so(bert_run):
    with TestClient(create_app([atento.load(bert_run)])) as c:
        r = c.post("/v1/sample", json={"prompt": "the"})
        error = r.json()["error"]
        assert r.status_code == 422 and error["item"] == "model"
        assert error["message"].startswith("no language-model run is served")


def test_a_captioning_run_is_refused_at_start_up(caption_run):
    with pytest.raises(AtentoError, match="caption run: no route serves it"):
        create_app([atento.load(caption_run)])


def test_errors_name_the_request_field_in_the_apis_spelling(lm_run):
    with TestClient(create_app([atento.load(lm_run)])) as c:
        r = c.post("/v1/sample", json={"prompt": "the cat sat on the mat. " * 3})  # > context
        error = r.json()["error"]
        assert r.status_code == 422 and "(keep_last keeps its last 32)" in error["message"]
        assert error["item"] == "prompt" and "--keep-last" not in error["message"]
        r = c.post("/v1/attention", json={"text": "the cat", "head": 7})
        assert r.status_code == 422 and r.json()["error"]["item"] == "head"
        assert "(0..1)" in r.json()["error"]["message"]
