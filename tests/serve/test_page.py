"""The page at / in a real headless Chromium: type a sentence, see the translation and the
heatmap, hover a cell for its tooltip, open the beam tree and compare two beam widths.

Chromium is installed by `browser.ensure_chromium` (apt-get) when missing; the test is skipped
with the reason only where that is impossible. ATENTO_PAGE_RUN / ATENTO_PAGE_SENTENCE pick
another run and sentence, and ATENTO_SCREENSHOT another screenshot path (the README's
pictures: see docs/img/README.md).
"""

import os
from pathlib import Path

import pytest

import atento

from .browser import chrome, ensure_chromium
from .conftest import DATES, serving

WAIT = 60


@pytest.fixture(scope="module")
def browser_paths():
    found = ensure_chromium()
    if isinstance(found, str):
        pytest.skip(f"no headless browser for the page test: {found}")
    return found


def test_page_translates_shows_attention_and_the_beam_tree(browser_paths, tf_run, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import Select, WebDriverWait

    run = Path(os.environ.get("ATENTO_PAGE_RUN", tf_run))
    sentence = os.environ.get("ATENTO_PAGE_SENTENCE", DATES[0])
    model = atento.load(run)
    transformer = hasattr(model.run.model, "n_layers")
    (expected,) = model.translate(sentence, beam=3, nbest=3, alpha=0.6, attention=True)
    with serving(str(run)) as url:
        driver = chrome(*browser_paths)
        try:
            wait = WebDriverWait(driver, WAIT)
            driver.get(url + "/")
            wait.until(EC.text_to_be_present_in_element((By.ID, "status"), "ready"))
            driver.find_element(By.ID, "source").send_keys(sentence)
            driver.find_element(By.ID, "translate").click()
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#heatmap .cell"))
            assert driver.find_element(By.ID, "translation").text == expected.text
            rows = driver.find_elements(By.CSS_SELECTOR, "#nbest-list tbody tr")
            assert len(rows) == len(expected.nbest)
            assert rows[0].find_elements(By.TAG_NAME, "td")[3].text == expected.text
            cells = driver.find_elements(By.CSS_SELECTOR, "#heatmap .cell")
            S, T = len(expected.source_pieces), len(expected.best.attention_rows)
            assert len(cells) == S * T

            # hover the strongest cell of the first output row: the tooltip names both pieces
            j = int(expected.best.attention[0].argmax())
            ActionChains(driver).move_to_element(cells[j]).perform()
            tip = driver.find_element(By.ID, "tooltip")
            wait.until(lambda d: tip.is_displayed())
            weight = float(expected.best.attention[0, j])
            src, tgt = expected.source_pieces[j], expected.best.attention_rows[0]
            src, tgt = src.replace(" ", "\u2423"), tgt.replace(" ", "\u2423")  # shown spaces
            assert tip.text == f"{src} \u2192 {tgt}: {weight:.3f}"

            if transformer:  #: another head redraws the heatmap with other weights
                before = [c.get_attribute("data-weight") for c in cells]
                Select(driver.find_element(By.ID, "head")).select_by_value("0")
                wait.until(EC.staleness_of(cells[0]))
                wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#heatmap .cell"))
                after = driver.find_elements(By.CSS_SELECTOR, "#heatmap .cell")
                assert [c.get_attribute("data-weight") for c in after] != before

            driver.find_element(By.ID, "open-tree").click()
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#tree-a svg.beam-tree"))
            trace = model.search_trace(sentence, beam=3, alpha=0.6)
            nodes = driver.find_elements(By.CSS_SELECTOR, "#tree-a g.node")
            assert len(nodes) == sum(len(s["candidates"]) for s in trace["steps"])
            statuses = [g.get_attribute("data-status") for g in nodes]
            assert statuses == [c["status"] for s in trace["steps"] for c in s["candidates"]]
            assert "beam width 3" in driver.find_element(By.CSS_SELECTOR, "#tree-a h3").text

            driver.find_element(By.ID, "compare").click()  # compare with beam width 1
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#tree-b svg.beam-tree"))
            kept = driver.find_elements(By.CSS_SELECTOR, "#tree-b g.node[data-status=kept]")
            greedy = model.search_trace(sentence, beam=1, alpha=0.6)
            assert len(kept) == sum(
                c["status"] == "kept" for s in greedy["steps"] for c in s["candidates"]
            )

            shot = Path(os.environ.get("ATENTO_SCREENSHOT", tmp_path / "page.png"))
            shot.parent.mkdir(parents=True, exist_ok=True)
            driver.execute_script("window.scrollTo(0, 0)")
            assert driver.save_screenshot(str(shot))
            assert shot.stat().st_size > 10_000
        finally:
            driver.quit()


def test_page_samples_from_a_language_model_and_shows_its_self_attention(browser_paths, lm_run):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    model = atento.load(lm_run)
    prompt = "the c"
    (expected,) = model.sample(prompt, max_new=30, temperature=0.8, top_k=40, seed=5)
    weights, rows, cols = model.self_attention(prompt)
    with serving(str(lm_run)) as url:
        driver = chrome(*browser_paths)
        try:
            wait = WebDriverWait(driver, WAIT)
            driver.get(url + "/")
            wait.until(EC.text_to_be_present_in_element((By.ID, "status"), "ready"))
            assert not driver.find_element(By.ID, "form").is_displayed()  # no sentence form
            driver.find_element(By.ID, "prompt").send_keys(prompt)
            for field, value in (("max-new", "30"), ("seed", "5")):
                box = driver.find_element(By.ID, field)
                box.clear()
                box.send_keys(value)
            driver.find_element(By.ID, "sample").click()
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#heatmap .cell"))
            text = driver.find_element(By.ID, "sample-text").get_attribute("textContent")
            assert text == expected
            cells = driver.find_elements(By.CSS_SELECTOR, "#heatmap .cell")
            assert len(cells) == len(rows) * len(cols) == len(prompt) ** 2
            drawn = [float(c.get_attribute("data-weight")) for c in cells]
            assert drawn == pytest.approx(weights.flatten().tolist(), abs=1e-4)
        finally:
            driver.quit()
