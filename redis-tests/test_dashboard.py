"""The web dashboard in a real browser: Debian's Chromium, headless, driven by Selenium through
Debian's chromedriver. Every page loads without console errors; a model is deployed from the
page, predicts (checked against in-process ONNX Runtime), is promoted and rolled back; a router
made on the page shows its traffic shares move when a weight slider moves. Screenshots go to
redis-tests/artifacts/dashboard/."""

import base64
import json
import os
import shutil
import time
import urllib.error
import urllib.request

import numpy as np
import onnxruntime as ort
import pytest

from conftest import ServerProcess, free_port
from test_routers import scale

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

HERE = os.path.dirname(__file__)
MODELS = os.path.join(HERE, "models")
ARTIFACTS = os.path.join(HERE, "artifacts", "dashboard")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    pytest.skip("Debian's chromium and chromium-driver are not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def srv():
    http = free_port()
    s = ServerProcess(["--http-port", http])
    s.http = http
    yield s
    s.stop()


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", "--window-size=1280,900"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    d.set_page_load_timeout(30)
    os.makedirs(ARTIFACTS, exist_ok=True)
    yield d
    d.quit()


def console_errors(d):
    return [e for e in d.get_log("browser") if e["level"] == "SEVERE"]


def wait(d, cond, timeout=15):
    # Pages re-render tables when data changes: an element found a moment ago may be gone.
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    return WebDriverWait(d, timeout, poll_frequency=0.1, ignored_exceptions=(
        NoSuchElementException, StaleElementReferenceException)).until(cond)


def visit(d, srv, page):
    d.get(f"http://127.0.0.1:{srv.http}/#/{page}")
    wait(d, EC.presence_of_element_located((By.TAG_NAME, "h1")))


def shot(d, name):
    d.save_screenshot(os.path.join(ARTIFACTS, f"{name}.png"))


def test_every_page_loads_without_console_errors(srv, browser):
    for page in ("overview", "models", "deploy", "try", "routers", "monitoring", "audit"):
        visit(browser, srv, page)
        heading = browser.find_element(By.TAG_NAME, "h1").text
        assert heading and heading != "Error", (page, heading)
        time.sleep(0.3)
        assert console_errors(browser) == [], page
    visit(browser, srv, "overview")
    wait(browser, lambda d: d.find_element(By.ID, "live").text == "live")
    assert len(browser.find_elements(By.CSS_SELECTOR, ".uplot")) == 2


def deploy(d, srv, key, path, tag="", meta="", staged=False):
    visit(d, srv, "deploy")
    form = d.find_element(By.ID, "deploy-form")
    form.find_element(By.NAME, "key").send_keys(key)
    form.find_element(By.NAME, "file").send_keys(os.path.abspath(path))
    if tag:
        form.find_element(By.NAME, "tag").send_keys(tag)
    if meta:
        form.find_element(By.NAME, "meta").send_keys(meta)
    if staged:
        form.find_element(By.NAME, "staged").click()
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(d, lambda d: "Stored" in d.find_element(By.ID, "deploy-result").text
         or d.find_elements(By.CSS_SELECTOR, "#deploy-result .error"))
    errors = d.find_elements(By.CSS_SELECTOR, "#deploy-result .error")
    assert not errors, errors[0].text


def test_try_page_explains_rows_with_a_bar_chart(srv, browser):
    c = srv.client()
    with open(f"{MODELS}/fraud.onnx", "rb") as f:
        assert c.execute_command("AI.MODELSTORE", "explained", "ONNX", "CPU", "BLOB", f.read())
    visit(browser, srv, "try/explained")
    wait(browser, lambda d: "transaction" in d.find_element(By.ID, "try-signature").text)
    rows = np.stack([np.linspace(-1, 1, 30), np.linspace(1, -1, 30)]).astype(np.float32)
    box = browser.find_element(By.ID, "try-rows")
    box.clear()
    box.send_keys("\n".join(", ".join(f"{v:.6f}" for v in r) for r in rows))
    Select(browser.find_element(By.ID, "try-method")).select_by_value("occlusion")
    browser.find_element(By.ID, "try-explain").click()
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "svg.attributions")) == 2
         or d.find_elements(By.CSS_SELECTOR, "#try-output .error"))
    failed = browser.find_elements(By.CSS_SELECTOR, "#try-output .error")
    assert not failed, failed[0].text
    shot(browser, "explain")
    # Occlusion against zeros: each bar is f(row) − f(row with that feature at 0).
    sess = ort.InferenceSession(f"{MODELS}/fraud.onnx", providers=["CPUExecutionProvider"])
    ref = np.zeros((1, 256), np.float32)
    for i, row in enumerate(rows):
        bars = browser.find_elements(By.CSS_SELECTOR, f"svg.attributions[data-row='{i}'] rect.bar")
        assert len(bars) == 30
        got = [float(b.get_attribute("data-value")) for b in bars]
        out = sess.run(None, {"transaction": row[None, :], "reference": ref})[0][0]
        klass = int(np.argmax(out)) if out.size > 1 else 0
        want = []
        for j in range(30):
            z = row.copy()
            z[j] = 0
            o = sess.run(None, {"transaction": z[None, :], "reference": ref})[0][0]
            want.append(float(out.ravel()[klass] - o.ravel()[klass]))
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert console_errors(browser) == []


def live_version(c):
    return [v["version"] for v in c.execute_command("AI.MODELVERSIONS", "fraud")
            if v["status"] == "live"][0]


def test_deploy_predict_promote_and_roll_back(srv, browser):
    c = srv.client(protocol=3)
    deploy(browser, srv, "fraud", f"{MODELS}/fraud.onnx", tag="v1", meta="team=risk")
    shot(browser, "deploy")
    catalog = c.execute_command("AI.MODELLIST", "WITHMETA")
    assert "fraud" in str(catalog) and "risk" in str(catalog)
    audit = c.execute_command("XREVRANGE", "locus:audit", "+", "-", "COUNT", 1)
    assert "dashboard" in str(audit), audit

    # Try it: one transaction row; the page fills the reference input with zeros.
    visit(browser, srv, "try/fraud")
    wait(browser, lambda d: "transaction" in d.find_element(By.ID, "try-signature").text)
    row = np.linspace(-1, 1, 30).astype(np.float32)
    box = browser.find_element(By.ID, "try-rows")
    box.clear()
    box.send_keys(", ".join(f"{v:.6f}" for v in row))
    browser.find_element(By.ID, "try-run").click()
    try:
        wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "table.output td")
             or d.find_elements(By.CSS_SELECTOR, "#try-output .error"))
    except Exception:
        shot(browser, "try-failed")
        raise AssertionError(browser.find_element(By.ID, "main").text + str(browser.get_log("browser")))
    failed = browser.find_elements(By.CSS_SELECTOR, "#try-output .error")
    assert not failed, failed[0].text
    got = [float(td.text) for td in browser.find_elements(By.CSS_SELECTOR, "table.output td")]
    sess = ort.InferenceSession(f"{MODELS}/fraud.onnx", providers=["CPUExecutionProvider"])
    want = sess.run(None, {"transaction": row[None, :],
                           "reference": np.zeros((1, 256), np.float32)})[0].ravel()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    shot(browser, "try")

    # A staged second version, promoted from its row, then rolled back.
    deploy(browser, srv, "fraud", f"{MODELS}/fraud.onnx", tag="v2", staged=True)
    visit(browser, srv, "models/fraud")
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#versions tr[data-version='2']"))
    assert browser.find_element(By.CSS_SELECTOR, "tr[data-version='2']").get_attribute("data-status") == "staged"
    browser.find_element(By.CSS_SELECTOR, "tr[data-version='2'] button.promote").click()
    wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "tr[data-version='2']").get_attribute("data-status") == "live")
    assert live_version(c) == 2
    shot(browser, "model")
    browser.find_element(By.ID, "rollback").click()
    wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "tr[data-version='1']").get_attribute("data-status") == "live")
    assert live_version(c) == 1
    visit(browser, srv, "audit")
    wait(browser, lambda d: "AI.MODELROLLBACK" in d.find_element(By.ID, "audit").text)
    browser.find_element(By.ID, "audit-filter").send_keys("PROMOTE")
    wait(browser, lambda d: "AI.MODELROLLBACK" not in d.find_element(By.ID, "audit").text)
    assert "AI.MODELPROMOTE" in browser.find_element(By.ID, "audit").text
    shot(browser, "audit")
    assert console_errors(browser) == []


def share(d, router, target):
    cell = d.find_element(By.CSS_SELECTOR, f"[data-router='{router}'] tr[data-target='{target}'] .share")
    return float(cell.text.rstrip("%"))


def test_router_shares_move_with_the_weight_slider(srv, browser):
    c = srv.client()
    c.execute_command("AI.MODELSTORE", "two", "ONNX", "CPU", "BLOB", scale(2))
    c.execute_command("AI.MODELSTORE", "five", "ONNX", "CPU", "BLOB", scale(5))
    visit(browser, srv, "routers")
    browser.find_element(By.ID, "router-key").send_keys("ab")
    browser.find_element(By.ID, "router-def").send_keys("SPLIT two 1 five 1")
    browser.find_element(By.ID, "router-create").click()
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-router='ab']"))
    c.execute_command("AI.TENSORSET", "x", "FLOAT", 1, 4, "VALUES", 1, 1, 1, 1)

    def traffic(n):
        for _ in range(n):
            c.execute_command("AI.MODELEXECUTE", "ab", "INPUTS", 1, "x", "OUTPUTS", 1, "y")

    traffic(400)
    wait(browser, lambda d: 35 < share(d, "ab", "two") < 65, timeout=20)
    slider = browser.find_element(By.CSS_SELECTOR, "[data-router='ab'] tr[data-target='five'] input.weight")
    browser.execute_script(
        "arguments[0].value = 0; arguments[0].dispatchEvent(new Event('change'))", slider)
    def weight_of_five():
        info = c.execute_command("AI.ROUTERINFO", "ab")
        info = dict(zip(info[::2], info[1::2])) if isinstance(info, list) else info
        for t in info["targets"]:
            t = dict(zip(t[::2], t[1::2])) if isinstance(t, list) else t
            if t["target"] == "five":
                return float(t["weight"])

    wait(browser, lambda d: weight_of_five() == 0)
    traffic(1200)
    # 400 split evenly, then 1200 all to `two`: its share climbs to about 87%.
    wait(browser, lambda d: share(d, "ab", "two") > 80, timeout=20)
    # The chart of shares per interval plotted both periods: `five` had requests, then none.
    series = browser.execute_script(
        "const p = document.querySelector(\"[data-router='ab'] .shares\");"
        "return p && p.querySelector('.uplot') ? true : false")
    assert series
    shot(browser, "routers")
    assert console_errors(browser) == []


def test_overview_plots_live_traffic(srv, browser):
    c = srv.client()
    visit(browser, srv, "overview")
    wait(browser, lambda d: d.find_element(By.ID, "live").text == "live")
    for _ in range(300):
        c.execute_command("AI.MODELEXECUTE", "two", "INPUTS", 1, "x", "OUTPUTS", 1, "y")
    # A drift alert raised while the page is open shows up in its feed.
    base = np.random.default_rng(2).standard_normal((200, 4)).astype(np.float32)
    raw = srv.client(decode_responses=False)
    raw.execute_command("AI.TENSORSET", "base4", "FLOAT", 200, 4, "BLOB", base.tobytes())
    raw.execute_command("AI.MONITOR", "SET", "two", "BASELINE", "base4", "WINDOW", 10, "EVERY", 10)
    for _ in range(10):
        c.execute_command("AI.MODELEXECUTE", "two", "INPUTS", 1, "x", "OUTPUTS", 1, "y")
    wait(browser, lambda d: "drift" in d.find_element(By.ID, "alerts").text, timeout=10)
    raw.execute_command("AI.MONITOR", "DEL", "two")
    # The plotted series saw the burst: model requests per second above zero.
    wait(browser, lambda d: d.execute_script("return Math.max(0, ...history.modelRps)") > 50)
    cards = {c.find_element(By.CLASS_NAME, "label").text: c.find_element(By.CLASS_NAME, "value").text
             for c in browser.find_elements(By.CSS_SELECTOR, "#cards .card")}
    assert int(cards["models"]) >= 3 and cards["memory"].endswith("iB")
    shot(browser, "overview")
    assert console_errors(browser) == []


def test_actions_need_the_dashboard_header_and_the_password(spawn):
    http = free_port()
    s = spawn("--http-port", http, "--requirepass", "pw", password="pw")
    url = f"http://127.0.0.1:{http}"

    def call(path, headers=None, data=None, method="GET"):
        req = urllib.request.Request(url + path, headers=headers or {}, data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    assert call("/")[0] == 401
    auth = {"Authorization": "Basic " + base64.b64encode(b"default:pw").decode()}
    status, page = call("/", auth)
    assert status == 200 and b"Locus" in page
    body = json.dumps(["SET", "k", "v"]).encode()
    assert call("/api/command", auth, body, "POST")[0] == 403
    status, reply = call("/api/command", {**auth, "X-Locus-Dashboard": "1"}, body, "POST")
    assert status == 200 and json.loads(reply) == {"ok": "OK"}
    assert s.client().get("k") == "v"
    status, reply = call("/api/command", {**auth, "X-Locus-Dashboard": "1"},
                         json.dumps(["NOSUCH"]).encode(), "POST")
    assert status == 400 and "unknown command" in json.loads(reply)["error"]


def auc(scores, positive):
    """Area under the ROC curve: the share of (positive, negative) pairs ranked right."""
    pos = [s for s, p in zip(scores, positive) if p]
    neg = [s for s, p in zip(scores, positive) if not p]
    return sum(1.0 for p in pos for n in neg if p > n) / (len(pos) * len(neg))


def test_test_data_page_scores_a_csv(srv, browser, tmp_path):
    c = srv.client()
    with open(f"{MODELS}/txn30.onnx", "rb") as f:
        c.execute_command("AI.MODELSTORE", "txn", "ONNX", "CPU", "BLOB", f.read())
    rng = np.random.default_rng(21)
    X = rng.standard_normal((300, 30)).astype(np.float32)
    sess = ort.InferenceSession(f"{MODELS}/txn30.onnx", providers=["CPUExecutionProvider"])
    probs = sess.run(None, {"transaction": X})[0]
    predicted = probs.argmax(axis=1)
    # Labels that mostly agree with the model, so the matrix has four non-empty cells.
    labels = np.where(rng.random(300) < 0.8, predicted, 1 - predicted)
    path = tmp_path / "rows.csv"
    with open(path, "w") as f:
        f.write(",".join([f"f{i}" for i in range(30)] + ["label"]) + "\n")
        for row, y in zip(X, labels):
            f.write(",".join(repr(float(v)) for v in row) + f",{y}\n")
    visit(browser, srv, "testdata/txn")
    browser.find_element(By.ID, "td-file").send_keys(str(path))
    browser.find_element(By.ID, "td-run").click()
    wait(browser, lambda d: d.find_elements(By.ID, "td-auc")
         or d.find_elements(By.CSS_SELECTOR, "#td-status .error"), timeout=30)
    assert not browser.find_elements(By.CSS_SELECTOR, "#td-status .error")
    cells = [int(td.text) for td in browser.find_elements(By.CSS_SELECTOR, "#td-confusion td")]
    want = [int(((labels == a) & (predicted == p)).sum()) for a in (0, 1) for p in (0, 1)]
    assert cells == want
    expected_auc = auc(probs[:, 1].astype(np.float64), labels == 1)
    assert abs(float(browser.find_element(By.ID, "td-auc").text) - expected_auc) < 1e-3
    shown = [float(td.text) for td in browser.find_elements(By.CSS_SELECTOR, "#td-table td.score")]
    np.testing.assert_allclose(shown, probs[:len(shown), 1], rtol=1e-4, atol=1e-5)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#td-distribution .uplot")) == 1
    assert len(browser.find_elements(By.CSS_SELECTOR, "#td-roc .uplot")) == 1
    shot(browser, "testdata")
    assert console_errors(browser) == []


def test_load_test_page_runs_a_bounded_test(srv, browser):
    c = srv.client()
    before = dict(zip(*[iter(c.execute_command("AI.INFO", "two"))] * 2))["calls"]
    visit(browser, srv, "loadtest/two")
    for field, value in (("lt-clients", 4), ("lt-seconds", 2)):
        box = browser.find_element(By.ID, field)
        box.clear()
        box.send_keys(str(value))
    browser.find_element(By.ID, "lt-start").click()
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#lt-status [data-done='1']")
         or d.find_elements(By.CSS_SELECTOR, "#lt-status .error:not([data-done])"), timeout=30)
    done = browser.find_element(By.CSS_SELECTOR, "#lt-status [data-done='1']")
    requests = int(done.get_attribute("data-requests"))
    assert requests > 50 and done.get_attribute("data-errors") == "0"
    after = dict(zip(*[iter(c.execute_command("AI.INFO", "two"))] * 2))["calls"]
    assert int(after) - int(before) >= requests
    shot(browser, "loadtest")
    assert console_errors(browser) == []
