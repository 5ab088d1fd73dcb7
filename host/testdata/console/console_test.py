"""Drives the web console (/ui) in headless Chromium, as an operator would, and checks what it
shows against the REST API. Run by tests/e2e/console.rs, which starts the host and its
connectors; prints "ok" when every check passed, raises (exit 1) with what was wrong otherwise.

    console_test.py actions URL SHOTS_DIR EVENTS_FILE PLANTED_SECRET REFUSED_CONFIG_FILE
    console_test.py tokens URL SHOTS_DIR FULL_TOKEN READ_TOKEN

Chromium and its driver are Debian's (scripts/setup.sh installs them); the driver's path is
given explicitly so that selenium never tries to download one.
"""

import base64
import json
import os
import sys
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import (NoSuchElementException, StaleElementReferenceException,
                                        TimeoutException)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

PATIENCE = 30


class Console:
    def __init__(self, url, shots):
        options = webdriver.ChromeOptions()
        options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                    "--disable-gpu", "--window-size=1280,900", "--lang=en-US"):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
        self.driver = webdriver.Chrome(service=service, options=options)
        self.url = url
        self.shots = shots

    def open(self, hash_route="#/"):
        self.driver.get(f"{self.url}/ui/{hash_route}")

    def wait(self, what, condition, patience=PATIENCE):
        """Waits until condition() returns something truthy, and returns it."""
        try:
            # The page redraws what it polls: an element found may be replaced a moment later.
            return WebDriverWait(self.driver, patience, poll_frequency=0.2, ignored_exceptions=(
                NoSuchElementException, StaleElementReferenceException)).until(lambda _: condition())
        except TimeoutException:
            raise AssertionError(f"timed out waiting for {what}; page text:\n{self.text()}") from None

    def text(self):
        return self.driver.find_element(By.TAG_NAME, "body").text

    def find(self, css):
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css):
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def button(self, label):
        for button in self.all("button"):
            if button.text == label:
                return button
        raise AssertionError(f"no button {label!r}; page text:\n{self.text()}")

    def rows(self):
        """The connectors page's rows: {name: shown state}, in the order shown."""
        shown = {}
        for row in self.all("tbody tr[data-connector]"):
            shown[row.get_attribute("data-connector")] = row.find_element(
                By.CSS_SELECTOR, ".badge").text
        return shown

    def edit_config(self, changes):
        """Changes keys of the config shown in the editor, as a user typing would, and saves."""
        editor = self.find("#config")
        config = json.loads(editor.get_attribute("value"))
        config.update(changes)
        editor.clear()
        editor.send_keys(json.dumps(config, indent=2))
        self.find("#save-config").click()

    def shown_state(self):
        return self.wait("the state badge", lambda: self.find(".headline .badge").text)

    def shot(self, name, width=1280):
        """A screenshot of the whole page (not only the window) at `width` CSS pixels."""
        self.driver.set_window_size(width, 900)
        self.driver.execute_script("document.activeElement && document.activeElement.blur()")
        time.sleep(0.3)
        size = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        image = self.driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"],
                     "height": min(size["height"], 4000), "scale": 1},
        })
        with open(os.path.join(self.shots, f"{name}.png"), "wb") as f:
            f.write(base64.b64decode(image["data"]))
        self.driver.set_window_size(1280, 900)

    def no_horizontal_scroll(self, where):
        self.driver.set_window_size(390, 844)
        time.sleep(0.5)
        widths = self.driver.execute_script(
            "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert widths[0] <= widths[1], f"{where} scrolls sideways at 390 px: {widths}"
        self.driver.set_window_size(1280, 900)

    def controls_are_labelled_and_reachable(self, where):
        """Every control has an accessible name, and Tab reaches every enabled one."""
        unnamed = self.driver.execute_script("""
            const named = (el) => (el.labels && el.labels.length > 0) || el.getAttribute('aria-label')
                || (el.tagName === 'BUTTON' && el.textContent.trim())
                || (el.tagName === 'A' && el.textContent.trim());
            return [...document.querySelectorAll('a[href], button, input, select, textarea')]
                .filter((el) => el.offsetParent !== null && !named(el)).map((el) => el.outerHTML);
        """)
        assert not unnamed, f"{where}: controls without a label: {unnamed}"
        wanted = self.driver.execute_script("""
            return [...document.querySelectorAll('a[href], button, input, select, textarea')]
                .filter((el) => el.offsetParent !== null && !el.disabled).length;
        """)
        self.driver.execute_script("document.activeElement && document.activeElement.blur()")
        reached = set()
        for _ in range(wanted + 10):
            # To whatever has the focus, as a keyboard would (the skip link is off-screen).
            ActionChains(self.driver).send_keys(Keys.TAB).perform()
            reached.add(self.driver.execute_script(
                "const el = document.activeElement; return el.id || el.outerHTML.slice(0, 120)"))
        missed = self.driver.execute_script("""
            const reached = new Set(arguments[0]);
            return [...document.querySelectorAll('a[href], button, input, select, textarea')]
                .filter((el) => el.offsetParent !== null && !el.disabled)
                .filter((el) => !reached.has(el.id || el.outerHTML.slice(0, 120)))
                .map((el) => el.outerHTML.slice(0, 120));
        """, list(reached))
        assert not missed, f"{where}: Tab never reached {missed}"

    def quit(self):
        errors = [e for e in self.driver.get_log("browser") if e["level"] == "SEVERE"
                  and "401" not in e["message"] and "403" not in e["message"]
                  and "400" not in e["message"]]
        self.driver.quit()
        assert not errors, f"the browser logged errors: {errors}"


def rest(url, method, path, token=None):
    request = urllib.request.Request(f"{url}{path}", method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
            return response.status, json.loads(body) if body else None
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def actions(url, shots, events_file, planted, refused_file):
    console = Console(url, shots)
    console.open()
    expected = {"bad-file", "broken", "casting", "events", "features", "orphan"}
    rows = console.wait("the connectors", lambda: (r := console.rows()) and set(r) == expected and r)
    states = list(rows.values())
    assert states[:3] == ["FAILED"] * 3 and "FAILED" not in states[3:], \
        f"failed connectors come first: {rows}"
    assert planted not in console.driver.page_source, "the planted password is on the connectors page"
    # A source whose topic no sink reads holds its records and says so, in the list and on its page.
    waiting = console.wait("the orphan's badge", lambda: console.all('tr[data-connector="orphan"] .badge.waiting'))
    assert waiting[0].text == "waiting for a sink", waiting[0].text
    assert '"nobody"' in waiting[0].get_attribute("title"), waiting[0].get_attribute("title")
    console.open("#/c/orphan")
    message = console.wait("the orphan's wait", lambda: console.all(".waiting") and console.find(".waiting").text)
    assert '"nobody"' in message and "topic.unsubscribed=discard" in message, message
    console.open()
    console.wait("the connectors again", lambda: set(console.rows()) == expected)

    # Filters: by name, by state.
    console.find("#filter-name").send_keys("cast")
    console.wait("the name filter", lambda: list(console.rows()) == ["casting"])
    console.find("#filter-name").clear()
    console.find("#filter-name").send_keys(Keys.BACKSPACE)
    Select(console.find("#filter-state")).select_by_value("FAILED")
    console.wait("the state filter", lambda: set(console.rows()) == {"bad-file", "broken", "features"})
    Select(console.find("#filter-state")).select_by_value("")
    console.wait("every connector again", lambda: set(console.rows()) == expected)
    console.controls_are_labelled_and_reachable("the connectors page")
    # Rates from successive readings, and their sparkline.
    points = console.wait("a sparkline of casting's throughput", lambda: len(console.find(
        'tr[data-connector="casting"] polyline').get_attribute("points").split()) >= 4 and console.find(
        'tr[data-connector="casting"] polyline').get_attribute("points"))
    assert any(float(p.split(",")[1]) < 22 for p in points.split()), f"a flat sparkline while records flow: {points}"
    console.shot("connectors")
    console.no_horizontal_scroll("the connectors page")
    console.shot("connectors-390px", width=390)

    # A failed connector: its trace.
    console.driver.find_element(By.LINK_TEXT, "broken").click()
    trace = console.wait("the trace", lambda: (t := console.find("#trace")).is_displayed() and t.text)
    assert "blocked" in trace, f"the trace says why: {trace}"
    assert console.shown_state() == "FAILED"
    console.shot("connector-failed")

    # The refused config file: why, on its page; gone from the list once removed.
    console.open("#/c/bad-file")
    trace = console.wait("the file's reason", lambda: (t := console.find("#trace")).is_displayed() and t.text)
    assert "bad-file.json" in trace and "file" in trace, f"the trace names the file and why: {trace}"
    os.remove(refused_file)
    console.open("#/")
    expected.remove("bad-file")
    console.wait("the list without the removed file", lambda: set(console.rows()) == expected)

    # The secret is hidden on its connector's page too, config included.
    console.open("#/c/features")
    console.wait("the features config", lambda: "[hidden]" in console.find("#config").get_attribute("value"))
    assert planted not in console.driver.page_source, "the planted password is on its connector's page"
    # Saved back as shown (an edit elsewhere in the config): the [hidden] keeps the stored secret.
    console.edit_config({"topics": "elsewhere,more"})
    console.wait("the saved features config", lambda: "Config saved" in console.find("#notice").text)
    code, stored = rest(url, "GET", "/connectors/features/config")
    assert stored["topics"] == "elsewhere,more" and stored["redis.uri"] == "[hidden]", stored
    assert planted not in console.driver.page_source, "the planted password is on the page after saving"

    # Pause and resume: the state shown and the REST status change.
    console.open("#/c/casting")
    console.wait("casting RUNNING", lambda: console.shown_state() == "RUNNING")
    console.button("Pause").click()
    console.wait("casting PAUSED", lambda: console.shown_state() == "PAUSED")
    code, status = rest(url, "GET", "/connectors/casting/status")
    assert code == 200 and status["connector"]["state"] == "PAUSED", status
    console.button("Resume").click()
    console.wait("casting RUNNING again", lambda: console.shown_state() == "RUNNING")
    code, status = rest(url, "GET", "/connectors/casting/status")
    assert status["connector"]["state"] == "RUNNING", status

    # A record the sink cannot cast, written while the page is open: its dead letter appears
    # with the stage, the class and the reason.
    with open(events_file, "a") as f:
        f.write('{"n": "not-a-number"}\n')
    letter = console.wait("the new dead letter", lambda: next(
        (row.text for row in console.all("#dead-letters tbody tr") if "not-a-number" in row.text), None))
    assert "TRANSFORMATION" in letter and "Cast$Value" in letter and "int32" in letter, letter

    # A bad value: the per-key error is shown, nothing changes.
    console.edit_config({"errors.tolerance": "sometimes"})
    error = console.wait("the per-key error", lambda: console.find("#config-errors").text)
    assert "errors.tolerance" in error and "sometimes" in error, error
    code, stored = rest(url, "GET", "/connectors/casting/config")
    assert stored["errors.tolerance"] == "all", f"a refused edit changed the config: {stored}"
    console.controls_are_labelled_and_reachable("a connector's page")
    console.shot("connector-config-error")
    console.no_horizontal_scroll("a connector's page")
    console.shot("connector-390px", width=390)

    # A good edit is saved.
    console.edit_config({"errors.tolerance": "all", "transforms.cast.spec": "n:string"})
    console.wait("the saved config", lambda: "Config saved" in console.find("#notice").text)
    code, stored = rest(url, "GET", "/connectors/casting/config")
    assert stored["transforms.cast.spec"] == "n:string", stored

    # A file-defined connector's config cannot be edited here.
    console.open("#/c/events")
    console.wait("the file note", lambda: "Defined by the file" in console.find("#config-note").text)
    assert console.find("#config").get_attribute("readonly") is not None
    assert not console.find("#save-config").is_enabled()

    # The worker page.
    console.open("#/worker")
    facts = console.wait("the worker facts", lambda: console.find("#worker").text)
    assert "embedded" in facts and "5:" in facts and "2 failed" in facts, facts
    console.controls_are_labelled_and_reachable("the worker page")
    console.shot("worker")
    console.no_horizontal_scroll("the worker page")
    console.quit()


def tokens(url, shots, full, read):
    console = Console(url, shots)
    console.open()
    console.wait("the sign-in form", lambda: console.find("#token").is_displayed())
    time.sleep(1)
    assert "casting" not in console.text(), "connectors are shown without a token"
    console.controls_are_labelled_and_reachable("the sign-in form")
    console.shot("sign-in")

    console.find("#token").send_keys("wrong")
    console.button("Sign in").click()
    console.wait("the refusal", lambda: "refused" in console.text())

    # The read-only token views, and cannot act: buttons disabled, editing off, and the API
    # refuses what the page would send.
    console.find("#token").send_keys(read)
    console.button("Sign in").click()
    console.wait("the list", lambda: "casting" in console.rows())
    assert "Read-only" in console.find("#access").text
    console.open("#/c/casting")
    console.wait("casting RUNNING", lambda: console.shown_state() == "RUNNING")
    assert not console.button("Pause").is_enabled(), "the read-only token may not pause"
    assert console.find("#config").get_attribute("readonly") is not None
    answer = console.driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch('/connectors/casting/pause', {method: 'PUT', headers: {Authorization: 'Bearer ' + arguments[0]}})
            .then((r) => done(r.status));
    """, read)
    assert answer == 403, f"the API let the read-only token pause: {answer}"
    console.shot("read-only")

    # The full token acts.
    console.button("Forget token").click()
    console.wait("the sign-in form again", lambda: console.find("#token").is_displayed())
    console.find("#token").send_keys(full)
    console.button("Sign in").click()
    # Signing in again shows the page that asked for it.
    console.wait("the Pause button", lambda: console.button("Pause").is_enabled())
    console.button("Pause").click()
    console.wait("casting PAUSED", lambda: console.shown_state() == "PAUSED")
    code, status = rest(url, "GET", "/connectors/casting/status", full)
    assert status["connector"]["state"] == "PAUSED", status
    console.quit()


if __name__ == "__main__":
    scenario, *args = sys.argv[1:]
    {"actions": actions, "tokens": tokens}[scenario](*args)
    print("ok")
