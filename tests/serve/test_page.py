"""The web page in headless Chromium (Selenium, the system chromium + chromedriver): upload an
image, type labels, classify; search by text; screenshots saved. Fails (not skips) without a
browser: `make test` installs it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from omnifuse import runtime
from omnifuse.serve import ServeConfig, create_app
from omnifuse.serve.index import VectorIndex

SCREENSHOT = Path(os.environ.get("OMNIFUSE_SERVE_SCREENSHOT", "/tmp/serve_page_test.png"))


def chrome_driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.fail(
            "chromium and chromedriver are needed: apt-get install -y chromium chromium-driver (make test does it)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,900",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(20)
    return driver


@pytest.mark.timeout(120)
def test_page_classifies_an_upload_and_shows_search_results(
    serve_model_dir, shapes_index, thread_server, tmp_path
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    index = VectorIndex.load(shapes_index)
    app = create_app(ServeConfig(model_dir="unused"), predictor=runtime.load(serve_model_dir), index=index)
    server = thread_server(app)
    image = index.image_path(index.items[0]["id"])
    driver = chrome_driver()
    try:
        wait = WebDriverWait(driver, 20)
        driver.get(server.url + "/")
        wait.until(lambda d: d.find_element(By.ID, "status").text.startswith("ready"))
        driver.find_element(By.ID, "cls-image").send_keys(str(image))
        driver.find_element(By.ID, "cls-labels").send_keys("red circle, blue square, green triangle")
        driver.find_element(By.ID, "cls-run").click()
        rows = wait.until(ec.presence_of_all_elements_located((By.CSS_SELECTOR, "#cls-result tr.cls-row")))
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#cls-result tr.cls-row")) == 3)
        rows = driver.find_elements(By.CSS_SELECTOR, "#cls-result tr.cls-row")
        labels = {row.find_elements(By.TAG_NAME, "td")[0].text for row in rows}
        assert labels == {"red circle", "blue square", "green triangle"}
        scores = [float(row.find_elements(By.TAG_NAME, "td")[1].text) for row in rows]
        assert scores == sorted(scores, reverse=True) and abs(sum(scores) - 1) < 0.01
        assert driver.find_element(By.ID, "cls-error").text == ""

        driver.find_element(By.ID, "search-text").send_keys(index.items[0]["metadata"]["text"])
        driver.find_element(By.ID, "search-run").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#search-grid .card")) == 12)
        # thumbnails are fetched (with the key, if any) and shown as blob URLs
        wait.until(
            lambda d: all(
                img.get_attribute(
                    "src",
                ).startswith("blob:")
                and d.execute_script("return arguments[0].naturalWidth", img) > 0
                for img in d.find_elements(By.CSS_SELECTOR, "#search-grid .card img")
            )
        )
        for path in (tmp_path / "page.png", SCREENSHOT):
            path.parent.mkdir(parents=True, exist_ok=True)
            assert driver.save_screenshot(str(path)), path
        assert (tmp_path / "page.png").stat().st_size > 10_000
    finally:
        driver.quit()


@pytest.mark.timeout(120)
def test_page_captions_and_answers_with_streamed_tokens(captioner_dir, image_bytes, thread_server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    predictor = runtime.load(captioner_dir)
    server = thread_server(create_app(ServeConfig(model_dir="unused"), predictor=predictor))
    image = tmp_path / "shape.png"
    image.write_bytes(image_bytes(60, size=16))
    expected = predictor.caption([str(image)]).texts[0]
    driver = chrome_driver()
    try:
        wait = WebDriverWait(driver, 30)
        driver.get(server.url + "/")
        wait.until(lambda d: d.find_element(By.ID, "status").text.startswith("ready: captioner"))
        driver.find_element(By.ID, "txt-image").send_keys(str(image))
        driver.find_element(By.ID, "txt-run").click()
        wait.until(lambda d: d.find_element(By.ID, "txt-output").get_attribute("data-done") == "1")
        assert driver.find_element(By.ID, "txt-output").text == expected
        assert driver.find_element(By.ID, "txt-error").text == ""

        driver.find_element(By.ID, "txt-question").send_keys("what color is the circle?")
        limit = driver.find_element(By.ID, "txt-max")
        limit.clear()
        limit.send_keys("100000")
        driver.find_element(By.ID, "txt-run").click()
        wait.until(lambda d: "above the server's limit" in d.find_element(By.ID, "txt-error").text)
        limit.clear()
        limit.send_keys("4")
        driver.find_element(By.ID, "txt-run").click()
        wait.until(lambda d: d.find_element(By.ID, "txt-output").get_attribute("data-done") == "1")
        assert driver.find_element(By.ID, "txt-error").text == ""
        assert driver.save_screenshot(str(tmp_path / "generate.png"))
    finally:
        driver.quit()
