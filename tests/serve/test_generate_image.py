"""`POST /v1/generate/image` and the page's generation panel, on a tiny random text-to-image model."""

from __future__ import annotations

import base64
import io

import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from omnifuse import runtime
from omnifuse.data.processors import (
    ImageProcessor,
    ImageSettings,
    Processor,
    TextProcessor,
    build_word_tokenizer,
)
from omnifuse.serve import Limits, ServeConfig, create_app

pytest.importorskip("vector_quantize_pytorch")


@pytest.fixture(scope="module")
def t2i_dir(tmp_path_factory):
    from omnifuse.models.image_tokenizer import ImageTokenizer, ImageTokenizerConfig
    from omnifuse.models.text_to_image import TextToImage, TextToImageConfig

    torch.manual_seed(0)
    tok = ImageTokenizer(
        ImageTokenizerConfig(grid=4, codebook_size=16, hidden=8, codebook_dim=8, kmeans_init=False),
        Processor({"image": ImageProcessor(ImageSettings(size=16))}),
    )
    text = TextProcessor(build_word_tokenizer(["a red circle above a blue square"]), max_length=8)
    model = TextToImage(
        TextToImageConfig(image_tokenizer="mem", hidden=16, layers=1, heads=2), tok, Processor({"text": text})
    )
    out = tmp_path_factory.mktemp("t2i") / "model"
    model.eval().save_pretrained(out)
    return out


def client_for(model_dir, **limits) -> TestClient:
    config = ServeConfig(model_dir="unused", limits=Limits(**limits))
    return TestClient(create_app(config, predictor=runtime.load(model_dir)))


def test_generates_base64_images_deterministic_for_a_seed(t2i_dir):
    with client_for(t2i_dir) as c:
        body = {"prompt": "a red circle above a blue square", "n": 3, "guidance_scale": 2.0, "seed": 5}
        first = c.post("/v1/generate/image", json=body)
        assert first.status_code == 200, first.text
        out = first.json()
        assert len(out["images"]) == 3 and (out["width"], out["height"]) == (16, 16)
        assert Image.open(io.BytesIO(base64.b64decode(out["images"][0]))).size == (16, 16)
        assert c.post("/v1/generate/image", json=body).json()["images"] == out["images"]
        grid = c.post("/v1/generate/image", json={**body, "format": "png"})
        assert grid.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(grid.content)).size == (3 * 16 + 4 * 2, 16 + 2 * 2)


def test_limits_and_bad_requests_are_4xx(t2i_dir):
    with client_for(t2i_dir, max_images=4, max_guidance_scale=5.0) as c:
        too_many = c.post("/v1/generate/image", json={"prompt": "a red circle", "n": 5})
        assert too_many.status_code == 413 and "limit of 4" in too_many.json()["error"]
        strong = c.post("/v1/generate/image", json={"prompt": "a red circle", "guidance_scale": 6})
        assert strong.status_code == 422 and "limit of 5" in strong.json()["error"]
        assert c.post("/v1/generate/image", json={"prompt": ""}).status_code == 422
        assert c.post("/v1/generate/image", json={"prompt": "x", "format": "gif"}).status_code == 422
        assert c.post("/v1/generate/image", json={"prompt": "x", "n": 0}).status_code == 422
    with client_for(t2i_dir, max_generate_s=1e-6) as c:
        slow = c.post("/v1/generate/image", json={"prompt": "a red circle", "n": 2})
        assert slow.status_code == 408 and "longer than the limit" in slow.json()["error"]


def test_a_model_that_cannot_generate_images_is_a_400(serve_model_dir):
    with client_for(serve_model_dir) as c:
        r = c.post("/v1/generate/image", json={"prompt": "a red circle"})
        assert r.status_code == 400 and "generate_image" in r.json()["error"]


@pytest.mark.timeout(120)
def test_page_generation_panel(t2i_dir, thread_server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    from tests.serve.test_page import chrome_driver

    app = create_app(ServeConfig(model_dir="unused"), predictor=runtime.load(t2i_dir))
    server = thread_server(app)
    driver = chrome_driver()
    try:
        wait = WebDriverWait(driver, 30)
        driver.get(server.url + "/")
        wait.until(lambda d: d.find_element(By.ID, "status").text.startswith("ready"))
        driver.find_element(By.ID, "gen-prompt").send_keys("a red circle above a blue square")
        n = driver.find_element(By.ID, "gen-n")
        n.clear()
        n.send_keys("2")
        driver.find_element(By.ID, "gen-run").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#gen-grid .gen-card img")) == 2)
        wait.until(
            lambda d: all(
                d.execute_script("return arguments[0].naturalWidth", img) == 16
                for img in d.find_elements(By.CSS_SELECTOR, "#gen-grid .gen-card img")
            )
        )
        assert driver.find_element(By.ID, "gen-error").text == ""
        assert driver.save_screenshot(str(tmp_path / "generate.png"))
    finally:
        driver.quit()
