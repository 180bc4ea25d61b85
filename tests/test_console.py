"""The web console in a real browser (Debian's chromium driven by playwright) against real daphne.

Run with ``pytest -m browser``. Screenshots of the main states go to ``$CONSOLE_SCREENSHOTS``
or, by default, ``screenshots/`` under the run's pytest temporary directory.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright import sync_api as playwright_api
from playwright.sync_api import expect

from tests.services import ROOT, Gateway, free_port

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 20000
expect.set_options(timeout=WAIT_MS)


def tokens(n: int) -> str:
    return " ".join(f"t{i}" for i in range(1, n + 1))


class TcpProxy:
    """A loopback TCP proxy in front of a gateway whose connections the test can cut.

    ``cut()`` drops every open connection at once (a network drop: no close frame);
    while ``down`` new connections are closed as soon as they are accepted.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.down = False
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if self.down:
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._open.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for sock in (source, sink):
            self._drop(sock)

    def _drop(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    def cut(self) -> None:
        with self._lock:
            sockets = list(self._open)
        for sock in sockets:
            self._drop(sock)

    def close(self) -> None:
        self._server.close()
        self.cut()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (the browser tier needs it)")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("CONSOLE_SCREENSHOTS")
    path = Path(configured) if configured else tmp_path_factory.getbasetemp() / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def console_gateway(gateways) -> Gateway:
    return gateways.shared("memory")


class Pages:
    """Browser pages of one test; a script error on any of them fails the test."""

    def __init__(self, browser) -> None:
        self.browser = browser
        self.contexts = []
        self.errors: list[str] = []

    def new(self, url: str, width: int = 1280, height: int = 800):
        context = self.browser.new_context(viewport={"width": width, "height": height})
        self.contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        # The page must live within its own Content-Security-Policy.
        page.on(
            "console",
            lambda msg: "Content Security Policy" in msg.text and self.errors.append(msg.text),
        )
        page.goto(url)
        return page

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def pages(browser) -> Iterator[Pages]:
    opened = Pages(browser)
    yield opened
    opened.close()
    assert opened.errors == []


def open_console(pages: Pages, gateway: Gateway | TcpProxy, path: str = "/", **size):
    page = pages.new(gateway.http + path, **size)
    expect(page.locator("#conn")).to_have_attribute("data-state", "open")
    return page


def new_session(page) -> str:
    page.click("#new-session")
    page.wait_for_url(re.compile(r"#s=\w+"))
    expect(page.locator("#conv-status")).to_have_text(re.compile("idle|starting"))
    return page.url.split("#s=")[1]


def send(page, text: str) -> None:
    page.fill("#input", text)
    page.press("#input", "Enter")


def reply(page, index: int = -1):
    """The assistant message at ``index``, once its turn has ended."""
    messages = page.locator(".msg.assistant")
    message = messages.nth(index) if index >= 0 else messages.last
    expect(message).to_have_attribute("data-status", re.compile("complete|error|interrupted"))
    return message


def reply_text(page, index: int = -1) -> str:
    return reply(page, index).locator(".text").inner_text()


# -- sessions and streaming ---------------------------------------------------------


def test_create_stream_and_sidebar(pages, console_gateway, screenshots):
    page = open_console(pages, console_gateway)
    new_session(page)
    send(page, "!title Streaming demo\n!stream 200")
    assert reply_text(page) == tokens(200)
    assert page.locator(".msg.assistant").count() == 1
    expect(page.locator("#conv-title")).to_have_text("Streaming demo")
    row = page.locator("#session-list li.session.current")
    expect(row.locator(".session-title")).to_have_text("Streaming demo")
    expect(row.locator(".status-word")).to_have_text("idle")
    page.screenshot(path=screenshots / "stream.png")

    # Another session, then back to the first one from the sidebar.
    first = page.url.split("#s=")[1]
    new_session(page)
    expect(page.locator(".msg")).to_have_count(0)
    page.locator(f'#session-list li[data-key="{first}"] .session-open').click()
    expect(page.locator("#conv-title")).to_have_text("Streaming demo")
    assert reply_text(page) == tokens(200)

    # Search by title, rename, then delete with confirmation.
    page.fill("#search", "no such title at all")
    expect(page.locator("#session-list li.session")).to_have_count(0)
    page.fill("#search", "Streaming demo")
    expect(page.locator("#session-list li.session.current")).to_have_count(1)
    row.locator("button.rename").click()
    page.fill("#prompt-value", "Renamed demo")
    page.click("#prompt-ok")
    expect(page.locator("#conv-title")).to_have_text("Renamed demo")
    page.fill("#search", "")
    expect(page.locator("#session-list li.session.current .session-title")).to_have_text("Renamed demo")
    page.locator("#session-list li.session.current button.delete").click()
    expect(page.locator("#confirm-text")).to_contain_text("Renamed demo")
    page.click("#confirm-ok")
    expect(page.locator("#conv-title")).to_have_text("No session")
    expect(page.locator("#session-list .session-title", has_text="Renamed demo")).to_have_count(0)


def test_stop_edit_rerun_and_undo(pages, console_gateway):
    page = open_console(pages, console_gateway)
    new_session(page)
    send(page, "!stream 400 25")
    expect(page.locator("#stop")).to_be_enabled()
    expect(page.locator(".msg.assistant .text")).to_contain_text("t3 ")
    page.press("#input", "Escape")
    expect(reply(page)).to_have_attribute("data-status", "interrupted")

    send(page, "first")
    expect(page.locator(".msg.assistant").last).to_contain_text("You said: first")
    reply(page)
    send(page, "second")
    expect(page.locator(".msg.assistant").last).to_contain_text("You said: second")
    reply(page)
    users = page.locator(".msg.user")
    expect(users).to_have_count(3)
    users.nth(2).locator("button.edit").click()
    page.fill(".edit-area", "second, edited")
    page.click("text=Rerun from here")
    expect(page.locator("#confirm-text")).to_contain_text("Rerun from here?")
    page.click("#confirm-ok")
    expect(page.locator(".msg.assistant").last).to_contain_text("You said: second, edited")
    reply(page)
    expect(page.locator(".msg.user")).to_have_count(3)
    expect(page.locator(".msg.user").last).to_contain_text("second, edited")

    page.click("#undo")
    expect(page.locator(".msg.user")).to_have_count(2)
    expect(page.locator(".msg.user").last).to_contain_text("first")


def test_markdown_is_rendered_and_injected_html_never_runs(pages, console_gateway, screenshots):
    page = open_console(pages, console_gateway)
    new_session(page)
    send(page, '**bold** `code` <script>window.__xss=1</script> <img src=x onerror="window.__xss=2">')
    message = reply(page)
    expect(message.locator("strong")).to_have_text("bold")
    expect(message.locator("code")).to_have_text("code")
    assert "<script>window.__xss=1</script>" in message.inner_text()
    assert page.locator("#conversation script, #conversation img").count() == 0
    assert page.evaluate("window.__xss") is None

    # The renderer itself, on what the demo agent cannot produce: blocks, links, raw HTML.
    rendered = page.evaluate(
        """async () => {
            const { renderMarkdown } = await import('/static/ws_gateway/markdown.js');
            const div = document.createElement('div');
            div.append(renderMarkdown(
              '# Title\\n\\n```js\\nconst a = "<b>x</b>";\\n```\\n- one\\n- two\\n\\n' +
              '[ok](https://example.org) [bad](javascript:alert(1)) <iframe src="x"></iframe>'));
            return {
              tags: [...div.querySelectorAll('*')].map((e) => e.tagName.toLowerCase()),
              code: div.querySelector('pre code').textContent,
              hrefs: [...div.querySelectorAll('a')].map((a) => a.getAttribute('href')),
              text: div.textContent,
            };
        }"""
    )
    assert set(rendered["tags"]) <= {"h3", "pre", "code", "ul", "li", "p", "a"}
    assert rendered["code"] == 'const a = "<b>x</b>";'
    assert rendered["hrefs"] == ["https://example.org"]
    assert '<iframe src="x"></iframe>' in rendered["text"]
    assert page.evaluate("window.__xss") is None


# -- people in the loop ------------------------------------------------------------


def test_approve_from_the_page(pages, console_gateway, screenshots):
    page = open_console(pages, console_gateway)
    new_session(page)
    send(page, "!approve rm -rf no-such-dir-console-test")
    card = page.locator(".request-approval")
    expect(card).to_be_visible()
    expect(card.locator(".request-command")).to_have_text("rm -rf no-such-dir-console-test")
    choices = card.locator("button[data-choice]")
    expect(choices).to_have_count(4)
    names = [choices.nth(i).get_attribute("data-choice") for i in range(4)]
    assert names == ["once", "session", "always", "deny"]
    expect(page.locator("#conv-status")).to_have_text("waiting")
    page.screenshot(path=screenshots / "approval.png")
    card.locator("button[data-choice=once]").click()
    expect(card).to_have_count(0)
    assert reply_text(page).startswith("Ran: rm -rf no-such-dir-console-test (exit 0)")


def test_clarify_with_choices_and_free_text(pages, console_gateway):
    page = open_console(pages, console_gateway)
    new_session(page)
    send(page, "!clarify Which? | a | b")
    card = page.locator(".request-clarify")
    expect(card.locator(".request-title")).to_have_text("Which?")
    card.locator("button[data-choice=b]").click()
    assert reply_text(page) == "Answer: b"
    send(page, "!clarify Your name?")
    card = page.locator(".request-clarify")
    card.locator("input").fill("Ada Lovelace")
    card.locator("input").press("Enter")
    expect(page.locator(".msg.assistant")).to_have_count(2)
    assert reply_text(page) == "Answer: Ada Lovelace"


def test_sudo_password_is_not_kept_in_the_page(pages, console_gateway, screenshots):
    secret = f"pw-{uuid.uuid4().hex}"
    page = open_console(pages, console_gateway)
    new_session(page)
    send(page, "!sudo")
    field = page.locator(".request-sudo input[type=password]")
    field.fill(secret)
    page.screenshot(path=screenshots / "sudo.png")
    field.press("Enter")
    assert reply_text(page) == "sudo: received"
    assert secret not in page.content()
    values = page.evaluate("[...document.querySelectorAll('input, textarea')].map((e) => e.value)")
    assert all(secret not in value for value in values)

    send(page, "!secret API_TOKEN Paste the token")
    card = page.locator(".request-secret")
    expect(card.locator(".request-title")).to_have_text("Paste the token")
    card.locator("input[type=password]").fill(secret)
    card.locator("button", has_text="Send").click()
    expect(page.locator(".msg.assistant")).to_have_count(2)
    assert reply_text(page) == "secret: stored"
    assert secret not in page.content()


# -- work in progress ------------------------------------------------------------


def test_todo_list(pages, console_gateway):
    page = open_console(pages, console_gateway)
    new_session(page)
    send(page, "!todo Write tests; Ship it")
    reply(page)
    items = page.locator("#todo-list .todo")
    expect(items).to_have_count(2)
    expect(items.nth(0)).to_have_attribute("data-status", "in_progress")
    expect(items.nth(0).locator(".content")).to_have_text("Write tests")
    expect(items.nth(1)).to_have_attribute("data-status", "pending")
    send(page, "!todo-done 1")
    expect(items.nth(0)).to_have_attribute("data-status", "completed")
    expect(items.nth(1)).to_have_attribute("data-status", "in_progress")


def test_background_process_live_output_and_kill(pages, console_gateway, screenshots):
    page = open_console(pages, console_gateway)
    new_session(page)
    send(page, "!bg tail -f manage.py")
    assert reply_text(page).startswith("Started: ")
    proc = page.locator("#process-list .proc")
    expect(proc).to_have_attribute("data-status", "running")
    # manage.py's last lines, streamed by agent.terminal.output while the process runs.
    expect(proc.locator(".proc-output")).to_contain_text("main()")
    page.screenshot(path=screenshots / "process.png")
    proc.locator("button", has_text="Kill").click()
    expect(proc).not_to_have_attribute("data-status", "running")
    expect(proc.locator("button", has_text="Kill")).to_have_count(0)


def test_delegate_and_watch_the_running_child(pages, console_gateway, screenshots):
    page = open_console(pages, console_gateway)
    parent = new_session(page)
    send(page, "!delegate count :: !stream 60 50")
    sub = page.locator("#subagent-list .subagent")
    expect(sub.locator(".sub-goal")).to_have_text("count")
    sub.locator("button", has_text="Watch").click()
    expect(page.locator("#watch-banner")).to_be_visible()
    child_reply = page.locator(".msg.assistant").last
    expect(child_reply).to_have_attribute("data-status", "complete")
    assert child_reply.locator(".text").inner_text() == tokens(60)
    page.screenshot(path=screenshots / "watch.png")
    page.click("#watch-back")
    page.wait_for_url(re.compile(f"#s={parent}$"))
    expect(page.locator("#watch-banner")).to_be_hidden()
    expect(page.locator(".msg.assistant").last).to_have_text(
        re.compile(re.escape(f"Delegated: count -> {tokens(60)}"))
    )
    expect(page.locator("#subagent-list .subagent")).to_have_attribute("data-status", "complete")


# -- live and shared ---------------------------------------------------------------


def test_two_pages_on_one_session(pages, console_gateway):
    first = open_console(pages, console_gateway)
    key = new_session(first)
    send(first, "hello")
    assert reply_text(first) == "You said: hello"
    second = open_console(pages, console_gateway, f"/#s={key}")
    assert reply_text(second) == "You said: hello"

    send(first, "!stream 80 10")
    expect(second.locator(".msg.assistant")).to_have_count(2)
    assert reply_text(first) == tokens(80)
    assert reply_text(second) == tokens(80)
    expect(second.locator(".msg.user").last).to_contain_text("!stream 80 10")

    send(first, "!approve rm -rf no-such-dir-two-pages")
    expect(first.locator(".request-approval")).to_be_visible()
    expect(second.locator(".request-approval")).to_be_visible()
    second.locator(".request-approval button[data-choice=deny]").click()
    expect(first.locator(".request-approval")).to_have_count(0)
    expect(first.locator(".msg.assistant")).to_have_count(3)
    assert reply_text(first) == "Denied: rm -rf no-such-dir-two-pages"


def test_reload_mid_stream_shows_the_exact_text(pages, console_gateway):
    page = open_console(pages, console_gateway)
    new_session(page)
    send(page, "!stream 150 20")
    expect(page.locator(".msg.assistant .text")).to_contain_text("t10 ")
    page.reload()
    expect(page.locator("#conn")).to_have_attribute("data-state", "open")
    assert reply_text(page) == tokens(150)
    assert page.locator(".msg.assistant").count() == 1

    # A request open at reload time is shown again.
    send(page, "!clarify Still there? | yes | no")
    expect(page.locator(".request-clarify")).to_be_visible()
    page.reload()
    page.locator(".request-clarify button[data-choice=yes]").click()
    assert reply_text(page) == "Answer: yes"


def test_network_drop_mid_stream_replays_by_seq(pages, console_gateway, screenshots):
    proxy = TcpProxy(console_gateway.port)
    try:
        page = open_console(pages, proxy)
        new_session(page)
        send(page, "!stream 150 20")
        expect(page.locator(".msg.assistant .text")).to_contain_text("t10 ")
        proxy.down = True
        proxy.cut()
        expect(page.locator("#conn")).to_have_attribute("data-state", "reconnecting")
        proxy.down = False
        expect(page.locator("#conn")).to_have_attribute("data-state", "open")
        assert reply_text(page) == tokens(150)
        assert page.locator(".msg.assistant").count() == 1
        assert page.locator(".msg.user").count() == 1
    finally:
        proxy.close()


def test_busy_input_queue(pages, console_gateway):
    page = open_console(pages, console_gateway)
    new_session(page)
    page.select_option("#busy-mode", "queue")
    send(page, "!stream 100 20")
    expect(page.locator("#conv-status")).to_have_text("working")
    send(page, "after the stream")
    expect(page.locator("#notice")).to_contain_text("Queued")
    expect(page.locator(".msg.assistant")).to_have_count(2)
    assert reply_text(page, 0) == tokens(100)
    assert reply_text(page, 1) == "You said: after the stream"
    expect(page.locator(".msg.user").last).to_contain_text("after the stream")


def test_server_restart_mid_session(pages, gateways, screenshots):
    gateway = gateways.new("memory")
    page = open_console(pages, gateway)
    new_session(page)
    send(page, "before restart")
    assert reply_text(page) == "You said: before restart"
    gateway.stop()
    expect(page.locator("#conn")).to_have_attribute("data-state", "reconnecting")
    page.screenshot(path=screenshots / "reconnecting.png")
    gateway.start()
    expect(page.locator("#conn")).to_have_attribute("data-state", "open")
    send(page, "after restart")
    expect(page.locator(".msg.assistant")).to_have_count(2)
    assert reply_text(page) == "You said: after restart"
    assert page.locator(".msg.assistant", has_text="You said: before restart").count() == 1


# -- commands, settings, layout, auth ------------------------------------------------------


def test_slash_completion_help_and_skin(pages, console_gateway):
    page = open_console(pages, console_gateway)
    new_session(page)
    page.fill("#input", "")
    page.type("#input", "/hel")
    option = page.locator("#completions li", has_text="/help")
    expect(option.first).to_be_visible()
    page.press("#input", "Tab")
    expect(page.locator("#input")).to_have_value(re.compile(r"^/help"))
    page.press("#input", "Enter")
    expect(page.locator(".msg.system.output")).to_contain_text("/status")

    # A command that is not plain (4018 from slash.exec) goes through command.dispatch.
    send(page, "/queue from a command")
    assert reply_text(page) == "You said: from a command"

    # Shift+Enter is a new line; a reasoning part is folded.
    page.fill("#input", "!think pondering")
    page.press("#input", "Shift+Enter")
    page.type("#input", "two lines")
    expect(page.locator("#input")).to_have_value("!think pondering\ntwo lines")
    page.press("#input", "Enter")
    expect(page.locator(".msg.assistant")).to_have_count(2)
    assert reply_text(page) == "You said: two lines"
    reasoning = page.locator(".msg.assistant").last.locator("details.reasoning")
    expect(reasoning).not_to_have_attribute("open", "")
    expect(reasoning.locator(".reasoning-text")).to_have_text("pondering")

    models = page.locator("#model-select")
    expect(models).to_be_enabled()
    expect(models).to_have_value("demo")

    accent = "getComputedStyle(document.documentElement).getPropertyValue('--accent').trim().toLowerCase()"
    html = page.locator("html")
    try:
        page.select_option("#skin-select", "slate")
        expect(html).to_have_attribute("data-skin", "slate")
        assert page.evaluate(accent) == "#94a3b8"
    finally:
        page.select_option("#skin-select", "default")
        expect(html).to_have_attribute("data-skin", "default")
        assert page.evaluate(accent) == "#60a5fa"


def test_phone_width_layout(pages, console_gateway, screenshots):
    page = open_console(pages, console_gateway, width=390, height=844)
    expect(page.locator("#sidebar")).not_to_be_in_viewport()
    page.click("#toggle-sidebar")
    expect(page.locator("#new-session")).to_be_in_viewport()
    page.click("#new-session")
    expect(page.locator("#sidebar")).not_to_be_in_viewport()
    send(page, "Hello from a phone, with a **long** line that has to wrap nicely on a narrow screen")
    reply(page)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=screenshots / "phone.png")
    send(page, "!todo Read on a phone")
    page.click("#toggle-work")
    expect(page.locator("#todo-list .todo .content")).to_be_in_viewport()
    expect(page.locator("#todo-list .todo .content")).to_have_text("Read on a phone")
    page.keyboard.press("Escape")
    expect(page.locator("#work")).not_to_be_in_viewport()


def test_login_required(pages, gateways):
    gateway = gateways.shared("memory", ALLOW_ANONYMOUS=False)
    username, password = f"user-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    subprocess.run(
        [sys.executable, "manage.py", "createsuperuser", "--noinput", "--username", username, "--email", ""],
        cwd=ROOT,
        env={**gateway.env, "DJANGO_SUPERUSER_PASSWORD": password},
        check=True,
        capture_output=True,
    )
    page = pages.new(gateway.http + "/")
    page.wait_for_url(re.compile(r"/accounts/login/\?next=/$"))
    page.fill("#id_username", username)
    page.fill("#id_password", "wrong")
    page.click("button[type=submit]")
    expect(page.locator(".form-error")).to_be_visible()
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(gateway.http + "/")
    expect(page.locator("#conn")).to_have_attribute("data-state", "open")
    expect(page.locator("#user-name")).to_have_text(username)
    new_session(page)
    send(page, "signed in")
    assert reply_text(page) == "You said: signed in"
    page.click("text=Log out")
    page.goto(gateway.http + "/")
    page.wait_for_url(re.compile(r"/accounts/login/"))
