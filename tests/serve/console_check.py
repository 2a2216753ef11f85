#!/usr/bin/env python3
"""The console page of `shardrec serve` (GET /) in a real headless browser (Chromium driven by
Selenium), against the server's own API.

  console_check.py SHARDREC WORKDIR

1. A tiny synthetic run, published; the server on a free loopback port.
2. The page loads and shows the served version.
3. A user id typed and submitted: the table shows the API's top 10 for that user (items, order,
   scores to the page's 4 decimals).
4. Three items picked by title from the search list, then "Recommend from this history": the API's
   top 10 for that history; with "explain" ticked, every row says why.
Every request goes to 127.0.0.1; every wait is bounded.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request

from serve_util import fresh_runs, start_server

BIN, WORK = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])


def run(*args):
    p = subprocess.run([BIN, *args], cwd=WORK, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        sys.exit(f"FAIL: shardrec {' '.join(args)}: exit {p.returncode}: {p.stderr[-2000:]}")


def api(port, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/recommend", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--no-first-run", "--disable-extensions", f"--user-data-dir={WORK}/chrome-profile"):
        opts.add_argument(flag)
    for path in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if os.path.exists(path):
            opts.binary_location = path
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    driver.set_page_load_timeout(30)
    return driver


def table(driver):
    """The results table read in one script (the page may redraw it between element lookups)."""
    return [(item, float(score), because) for item, score, because in driver.execute_script(
        "return Array.from(document.querySelectorAll('#results tr.hit')).map(r => ["
        "r.querySelector('td.item').textContent, r.querySelector('td.score').textContent,"
        "r.querySelector('td.because').textContent]);")]


def pick(driver, item):
    """Clicks the search list's entry of `item` if it is shown (read and clicked in one script, as the
    list is redrawn on every keystroke's answer); whether it was."""
    return driver.execute_script(
        "const li = Array.from(document.querySelectorAll('#matches li')).find(l => l.dataset.item === arguments[0]);"
        "if (!li) return false; li.click(); return true;", item)


def same(page, answer, what):
    want = [(i["item"], round(i["score"], 4)) for i in answer["items"]]
    got = [(item, score) for item, score, _ in page]
    assert [i for i, _ in got] == [i for i, _ in want], (what, got, want)
    assert all(abs(a - b) <= 1.5e-4 for (_, a), (_, b) in zip(got, want)), (what, got, want)


def main():
    fresh_runs(run, WORK, users=200, items=150, events=4000, runs=(("a", "7"),))
    run("publish", "--run-dir", "a", "--export-root", "S", "--export-version", "v1", "--force", "--factory", "Flat")
    server, port = start_server(BIN, WORK)
    driver = None
    try:
        from selenium.webdriver.support.ui import WebDriverWait
        driver = browser()
        wait = WebDriverWait(driver, 20)
        driver.get(f"http://127.0.0.1:{port}/")
        assert "ShardRec console" in driver.title, driver.title
        wait.until(lambda d: d.find_element("id", "version").text == "v1")
        print("the page loads and shows the served version v1")

        # A known user.
        driver.find_element("id", "user").send_keys("7")
        driver.find_element("id", "go-user").click()
        wait.until(lambda d: len(table(d)) == 10)
        same(table(driver), api(port, {"user": "7", "k": 10}), "user 7")
        print("user 7: the page's top 10 is the API's")

        # A history picked by title, explained.
        first = api(port, {"user": "7", "k": 3})["items"]
        for it in first:
            box = driver.find_element("id", "search")
            box.clear()
            box.send_keys(it["title"])
            wait.until(lambda d: pick(d, it["item"]))
        picked = driver.execute_script(
            "return Array.from(document.querySelectorAll('#history li')).map(li => li.textContent.split(/\\s+/)[0]);")
        assert picked == [it["item"] for it in first], picked
        driver.find_element("id", "explain").click()
        before = driver.find_element("id", "status").text
        driver.find_element("id", "go-history").click()
        wait.until(lambda d: d.find_element("id", "status").text != before and "history of 3" in d.find_element("id", "status").text)
        answer = api(port, {"history": picked, "k": 10, "explain": True})
        page = table(driver)
        same(page, answer, "history")
        assert all(because for _, _, because in page), page
        print(f"history {picked} picked by title: the page's top 10 is the API's, each row explained")
    finally:
        if driver is not None:
            driver.quit()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    print("console check: OK")


if __name__ == "__main__":
    main()
