"""The play and gallery pages in a real headless Chromium (Debian's chromium + chromium-driver, installed by
.ci/run) against a real server on a free localhost port: the page loads, a key press changes the predicted frame
(to exactly the model's rollout under that key's action), the reality check shows the simulator under the same
action, the recording downloads as an mp4, and the gallery runs a job to its video."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By

from worldsmith.diffusion.stepwise import CameraRollout
from worldsmith.envs.evaluate import eval_seeds
from worldsmith.envs.world_model import BatchedWorldModelEnv
from worldsmith.io.video import decode
from worldsmith.serve.app import create_app
from worldsmith.serve.background import BackgroundServer
from worldsmith.serve.models import arm_controls, camera_controls, load_models
from worldsmith.serve.settings import ServeSettings
from worldsmith.worlds.arm import ArmWorld
from worldsmith.worlds.base import WorldConfig
from worldsmith.worlds.orbit import OrbitWorld, camera_c2w, move_camera, velocity_bounds

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver (.ci/run "
                                                        "installs them)"),  # fmt: skip
    pytest.mark.usefixtures("one_torch_thread"),
]
SEED = eval_seeds(1)[0]


def wait_for(driver, script: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for: {script}; page error: {driver.find_element(By.ID, 'error').text}")


@pytest.fixture(scope="module")
def models(one_torch_thread):
    return load_models(["arm-action"])


@pytest.fixture(scope="module")
def server(models, tmp_path_factory):
    app = create_app(ServeSettings(work=tmp_path_factory.mktemp("serve")), models=models)
    with BackgroundServer(app) as url:
        yield url


@pytest.fixture(scope="module")
def downloads(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,900"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})  # fmt: skip
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def canvas(driver, which: str, size: int = 64) -> np.ndarray:
    return np.asarray(driver.execute_script(f"return window.play.pixels('{which}')"), np.uint8).reshape(size, size, 3)


def action_of(key: str) -> np.ndarray:
    """The action the page sends while ``key`` is held (the gripper stays open), from the server's key map."""
    a = np.zeros(7, np.float32)
    for c in arm_controls():
        if c.get("toggle"):
            a[c["index"]] = c["toggle"][0]
        elif c["key"] == key:
            a[c["index"]] += c["value"]
    return a


def test_play_page_a_key_press_steps_the_model_and_the_reality_check_shows_the_simulator(server, browser, models,
                                                                                        downloads):  # fmt: skip
    browser.get(f"{server}/play?model=arm-action&seed={SEED}&mode=step&autostart=1")
    wait_for(browser, "return window.play.stats().connected")
    assert browser.title == "worldsmith play"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#starts img")) == 8
    keys = [k.text for k in browser.find_elements(By.CSS_SELECTOR, "#keys kbd")]
    assert {"W", "A", "S", "D", "R", "F", "Q", "E", "space"} <= set(keys)

    env = BatchedWorldModelEnv(models["arm-action"].generator, None, reader=None)
    first = env.reset(seeds=[SEED])[0][0]
    assert np.array_equal(canvas(browser, "frame"), first)  # the start: the simulator's own first frame
    right = env.step(action_of("d")[None])[0][0]
    env.reset(seeds=[SEED])
    still = env.step(action_of("")[None])[0][0]

    ActionChains(browser).key_down("d").key_up("d").perform()  # one step (step mode): "d" moves right
    wait_for(browser, "return window.play.stats().step === 1")
    shown = canvas(browser, "frame")
    assert np.abs(shown.astype(int) - right.astype(int)).mean() < 0.5  # exactly the model's rollout under "d"
    assert np.abs(shown.astype(int) - still.astype(int)).mean() > 2 * np.abs(shown.astype(int) - right.astype(int)).mean()
    assert not np.array_equal(shown, first)

    assert not browser.find_element(By.ID, "sim-view").is_displayed()
    browser.find_element(By.ID, "reality").click()
    assert browser.find_element(By.ID, "sim-view").is_displayed()
    world = ArmWorld(WorldConfig(size=64))
    try:
        world.reset(SEED)
        truth = world.step(action_of("d"))
    finally:
        world.close()
    assert np.array_equal(canvas(browser, "sim"), truth)  # the simulator under the same action, lossless

    browser.find_element(By.ID, "record").click()
    deadline = time.monotonic() + 120  # generous: a loaded machine encodes slowly
    while not list(downloads.glob("*.mp4")) and time.monotonic() < deadline:
        time.sleep(0.1)
    (video,) = downloads.glob("*.mp4")
    assert video.name == f"worldsmith-play-arm-action-{SEED}.mp4"
    assert decode(video).shape == (2, 64, 130, 3)  # start + 1 step, model | simulator


def test_play_page_runs_continuously_and_measures_latency(server, browser):
    browser.get(f"{server}/play?model=arm-action&seed={SEED}&autostart=1")
    wait_for(browser, "return window.play.stats().frames >= 3")
    ActionChains(browser).key_down("a").pause(0.3).key_up("a").perform()
    stats = wait_for(browser, "const s = window.play.stats(); return s.latency_median_ms !== null && s")
    assert stats["fps"] > 0 and stats["latency_median_ms"] > 0 and browser.find_element(By.ID, "error").text == ""
    assert browser.find_element(By.ID, "s-fps").text != "–"


def test_play_page_a_key_turns_a_camera_models_camera(browser, tmp_path):
    served = load_models(["orbit-camera"])
    with BackgroundServer(create_app(ServeSettings(work=tmp_path), models=served)) as url:
        browser.get(f"{url}/play?model=orbit-camera&seed={SEED}&mode=step&autostart=1")
        wait_for(browser, "return window.play.stats().connected")
        keys = {k.text for k in browser.find_elements(By.CSS_SELECTOR, "#keys kbd")}
        assert {"W", "A", "S", "D", "Q", "E", "T", "G"} <= keys and "space" not in keys
        assert browser.find_element(By.ID, "task").get_attribute("disabled")  # camera models have no tasks
        world = OrbitWorld(WorldConfig(size=128, fps=served["orbit-camera"].fps, views=1))
        try:
            first = world.reset(SEED)
            K, cam = world.K, world.cam.copy()
        finally:
            world.close()
        assert np.array_equal(canvas(browser, "frame", 128), first)  # the orbit room's own first frame
        turn = np.zeros(5)
        turn[[c["index"] for c in camera_controls() if c["key"] == "q"][0]] = 0.2
        rollout = CameraRollout(served["orbit-camera"].generator)
        rollout.reset(first, K, camera_c2w(cam))
        want = rollout.step(camera_c2w(move_camera(cam, turn, served["orbit-camera"].fps, *velocity_bounds())))
        ActionChains(browser).key_down("q").key_up("q").perform()  # one step: "q" turns the camera left
        wait_for(browser, "return window.play.stats().step === 1")
        shown = canvas(browser, "frame", 128)
        assert np.abs(shown.astype(int) - want.astype(int)).mean() < 0.5 and not np.array_equal(shown, first)


def test_gallery_runs_an_action_job_to_its_video(server, browser):
    browser.get(f"{server}/gallery")
    wait_for(browser, "return document.querySelectorAll('#start option').length > 1")
    browser.find_element(By.ID, "frames").clear()
    browser.find_element(By.ID, "frames").send_keys("4")
    browser.find_element(By.ID, "submit").click()
    wait_for(browser, "return document.querySelector('.job video') !== null", timeout=120)
    job = browser.find_element(By.CSS_SELECTOR, ".job")
    assert "policy scripted (reach)" in job.text and "done" in job.text
    assert len(job.find_elements(By.TAG_NAME, "video")) == 2  # the model and the simulator's ground truth
