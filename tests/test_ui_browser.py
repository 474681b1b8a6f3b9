"""End to end: the chat page in a real headless chromium, served by uvicorn on a free loopback port.

Uses Debian's chromium (`make test` installs it; a browser is never downloaded)
through the python playwright package.  Screenshots go to evals/reports/ui/.
"""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

from rag.config import PROJECT_ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SHOTS = PROJECT_ROOT / "evals" / "reports" / "ui"
ANSWER_TIMEOUT_MS = 60_000

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def page_url(assistant):
    from ui.server import UIServer, create_ui_app

    with UIServer(create_ui_app(assistant)) as url:
        yield url + "/"


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("Debian chromium is not installed (`make browser` installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}  # an iPhone 12-15 screen


@contextmanager
def open_page(browser, url, viewport=DESKTOP):
    phone = viewport["width"] < 1024
    context = browser.new_context(viewport=viewport, locale="zh-CN", is_mobile=phone, has_touch=phone)
    pg = context.new_page()
    # what the page writes to the clipboard is recorded in window.__copied (headless has no clipboard)
    pg.add_init_script("window.__copied = []; Object.defineProperty(navigator, 'clipboard', "
                       "{value: {writeText: async (t) => { window.__copied.push(t); }}, configurable: true});")
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.goto(url)
    pg.wait_for_selector("#zc-question textarea", timeout=30_000)
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield pg
    finally:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def page(browser, page_url):
    with open_page(browser, page_url) as pg:
        yield pg


def ask(page, question: str) -> None:
    """Type a question, send it, and wait until its answer is complete (the bubble's footer appears)."""
    done_before = page.locator("#zc-chat .zc-meta").count()
    page.fill("#zc-question textarea", question)
    page.keyboard.press("Enter")
    page.wait_for_function("n => document.querySelectorAll('#zc-chat .zc-meta').length > n",
                           arg=done_before, timeout=ANSWER_TIMEOUT_MS)
    page.wait_for_selector("#zc-citations .zc-card", timeout=ANSWER_TIMEOUT_MS)


def test_chat_answers_with_citations_followups_and_refusals(page):
    # the page itself: title, tabs, filter, examples
    assert page.title() == "政策问答 · 集成电路产业规划"
    assert page.locator(".zc-header h1").inner_text() == "政策问答 · 集成电路产业规划"
    assert page.get_by_role("tab", name="文件与目录").count() == 1
    assert page.get_by_role("tab", name="上传规划").count() == 0  # no admin key configured
    page.screenshot(path=str(SHOTS / "0-start.png"))

    # a question: answer streams in, with a marker, and the citation panel lists the clause
    ask(page, "深圳到2025年集成电路产业营收目标是多少？")
    answer = page.locator("#zc-chat .zc-answer").last
    assert "2500亿元" in answer.inner_text()
    assert answer.locator("sup.zc-mark").first.inner_text() == "[1]"
    card = page.locator("#zc-citations .zc-card").first
    card_text = card.inner_text()
    assert "深圳市培育发展半导体与集成电路产业集群行动计划" in card_text
    assert "二.(一)" in card_text and "工作目标" in card_text
    assert "2500亿元" in card.locator("mark.zc-support").first.inner_text()
    page.screenshot(path=str(SHOTS / "1-answer.png"))

    # clicking the citation opens the clause in its context
    card.click()
    drawer = page.locator("#zc-context .zc-drawer")
    drawer.wait_for(timeout=15_000)
    assert "二.(一)" in drawer.locator(".zc-ctx-target").inner_text()
    assert drawer.locator(".zc-ctx-clause").count() >= 3
    page.screenshot(path=str(SHOTS / "2-context.png"))
    page.keyboard.press("Escape")
    drawer.wait_for(state="detached", timeout=5_000)

    # a follow-up is rewritten with the conversation's topic, and the rewrite is shown
    ask(page, "那苏州工业园区呢？")
    rewrite = page.locator("#zc-chat .zc-rewrite").last
    assert "苏州工业园区到2025年集成电路产业营收目标是多少" in rewrite.inner_text()
    assert "1000亿" in page.locator("#zc-chat .zc-answer").last.inner_text()
    assert "苏州工业园区" in page.locator("#zc-citations .zc-card").first.inner_text()
    page.screenshot(path=str(SHOTS / "3-followup.png"))

    # a question the plans don't answer: refusal styling, closest clauses still listed
    ask(page, "杭州到2025年集成电路产业营收目标是多少？")
    refusal = page.locator("#zc-chat .zc-refusal").last
    assert "未找到答案" in refusal.inner_text() and "杭州" in refusal.inner_text()
    assert refusal.evaluate("e => getComputedStyle(e).borderLeftColor") != \
        page.locator("#zc-chat .zc-answer").last.evaluate("e => getComputedStyle(e).borderLeftColor")
    assert page.locator("#zc-citations .zc-cites-refused").count() == 1
    assert "最接近的条款" in page.locator("#zc-citations").inner_text()
    page.screenshot(path=str(SHOTS / "4-refusal.png"))

    # bad input is a message, and the question stays in the box
    page.fill("#zc-question textarea", "深" * 1001)
    page.keyboard.press("Enter")
    page.wait_for_selector("#zc-status .zc-error", timeout=15_000)
    assert "问题过长" in page.locator("#zc-status").inner_text()
    assert len(page.locator("#zc-question textarea").input_value()) == 1001
    assert page.locator("#zc-citations .zc-cites-refused").count() == 1  # the panel is not wiped
    page.screenshot(path=str(SHOTS / "5-error.png"))


def test_documents_tab_shows_outlines_and_sections(page):
    page.get_by_role("tab", name="文件与目录").click()
    cards = page.locator("#zc-overview .zc-doc-card")
    cards.first.wait_for(timeout=10_000)
    assert cards.count() == 5
    qingpu = cards.filter(has_text="青浦区促进集成电路产业高质量发展行动方案")
    qingpu.locator("summary").click()
    qingpu.locator(".zc-ol-item", has_text="集成电路重点发展产业").click()
    section = page.locator("#zc-section .zc-ctx-clause")
    section.first.wait_for(timeout=10_000)
    assert section.count() == 3 and "集成电路设计产业" in section.first.inner_text()
    page.screenshot(path=str(SHOTS / "6-documents.png"))


def test_example_question_and_document_filter(page):
    page.locator("#zc-documents input").click()
    page.get_by_role("option", name="青浦区集成电路行动方案").click()
    page.keyboard.press("Escape")
    page.locator("#zc-chat button", has_text="苏州工业园区计划培育多少家IDM企业").click()
    page.wait_for_function("document.querySelectorAll('#zc-chat .zc-meta').length > 0", timeout=ANSWER_TIMEOUT_MS)
    page.wait_for_selector("#zc-citations .zc-card", timeout=ANSWER_TIMEOUT_MS)
    # the filter wins over the place named in the question: every cited clause is from Qingpu
    titles = page.locator("#zc-citations .zc-doc").all_inner_texts()
    assert titles and all("青浦区" in t for t in titles)
    # and the page says the place the question names is outside the chosen documents
    scope = page.locator("#zc-chat .zc-scope").last
    assert "苏州工业园区" in scope.inner_text() and "青浦区" in scope.inner_text()
    page.screenshot(path=str(SHOTS / "7-filter.png"))


def _header(page) -> str:
    return page.locator(".zc-header p").inner_text()


def test_upload_tab_with_an_admin_key(monkeypatch, browser, assistant, embedder, fresh_settings, tmp_path,
                                     wuxi_plan):
    """An upload with an empty title (the file name is the title) and an alias; as soon as it is
    published the page counts it, filters by it, lists it and shows its clauses in context -- in
    this session at once, in another open session at its next action; a delete likewise."""
    from rag.service import Assistant
    from ui.server import UIServer, create_ui_app

    monkeypatch.setenv("RAG_ADMIN_KEYS", "secret-key")
    can_upload = hasattr(Assistant, "add_document")
    # an upload changes the index: give it an assistant of its own
    own = Assistant(fresh_settings, embedder=embedder) if can_upload else assistant
    with UIServer(create_ui_app(own)) as url, open_page(browser, url + "/") as page, \
            open_page(browser, url + "/") as other:
        assert "基于 5 份" in _header(page) and "基于 5 份" in _header(other)
        page.get_by_role("tab", name="上传规划").click()
        status = page.locator("#zc-upload-status")
        if not can_upload:
            status.wait_for(timeout=10_000)
            assert "不支持上传" in status.inner_text()
            page.screenshot(path=str(SHOTS / "8-upload-unavailable.png"))
            return
        plan = tmp_path / "无锡市集成电路产业发展三年行动计划.txt"
        plan.write_text(wuxi_plan, encoding="utf-8")
        page.locator("#zc-upload-file input[type=file]").set_input_files(str(plan))
        page.fill("#zc-up-issuer textarea, #zc-up-issuer input", "无锡市人民政府")
        page.fill("#zc-up-aliases textarea, #zc-up-aliases input", "锡城, Xicheng")
        page.fill("#zc-up-docid textarea, #zc-up-docid input", "wuxi-2024")
        page.fill("#zc-admin-key input", "wrong-key")
        page.click("#zc-upload")
        page.wait_for_selector("#zc-upload-status .zc-error", timeout=15_000)
        assert "密钥不正确" in status.inner_text()
        page.fill("#zc-admin-key input", "secret-key")
        page.click("#zc-upload")
        page.wait_for_selector("#zc-upload-status .zc-progress, #zc-upload-status .zc-ok, "
                               "#zc-upload-status .zc-error", timeout=30_000)
        page.screenshot(path=str(SHOTS / "8-upload-progress.png"))
        page.wait_for_selector("#zc-upload-status .zc-ok, #zc-upload-status .zc-error", timeout=180_000)
        assert "上传完成" in status.inner_text(), status.inner_text()
        assert "无锡市集成电路产业发展三年行动计划" in status.inner_text()  # the file name is the title
        page.screenshot(path=str(SHOTS / "9-upload-done.png"))
        # this session: header, filter and documents tab know the new plan at once
        page.wait_for_function("document.querySelector('.zc-header p').innerText.includes('基于 6 份')",
                               timeout=15_000)
        page.get_by_role("tab", name="文件与目录").click()
        page.wait_for_function("document.querySelectorAll('#zc-overview .zc-doc-card').length === 6",
                               timeout=15_000)
        page.get_by_role("tab", name="问答").click()
        page.locator("#zc-documents input").click()
        assert page.get_by_role("option", name="无锡市集成电路产业发展三年行动计划").count() == 1
        page.keyboard.press("Escape")
        # the alias reaches it, and its citation opens in context
        ask(page, "锡城到2026年集成电路产业营收目标是多少？")
        assert "3000亿元" in page.locator("#zc-chat .zc-answer").last.inner_text()
        page.locator("#zc-citations .zc-card").first.click()
        drawer = page.locator("#zc-context .zc-drawer")
        drawer.wait_for(timeout=15_000)
        assert "未知文档" not in drawer.inner_text() and drawer.locator(".zc-ctx-target").count() == 1
        page.keyboard.press("Escape")

        # another open session sees it at its next action
        ask(other, "深圳到2025年集成电路产业营收目标是多少？")
        other.wait_for_function("document.querySelector('.zc-header p').innerText.includes('基于 6 份')",
                                timeout=15_000)
        other.locator("#zc-documents input").click()
        assert other.get_by_role("option", name="无锡市集成电路产业发展三年行动计划").count() == 1
        other.keyboard.press("Escape")

        # a delete (here through the core, as DELETE /v1/documents does) reaches both at their next action
        own.remove_document("wuxi-2024")
        other.get_by_role("tab", name="文件与目录").click()
        other.wait_for_function("document.querySelectorAll('#zc-overview .zc-doc-card').length === 5",
                                timeout=15_000)
        assert "基于 5 份" in _header(other)
        page.get_by_role("tab", name="文件与目录").click()
        page.wait_for_function("document.querySelector('.zc-header p').innerText.includes('基于 5 份')",
                               timeout=15_000)


def test_copy_gives_plain_text_with_markers_and_references(page):
    ask(page, "深圳到2025年集成电路产业营收目标是多少？")
    bot = page.locator("#zc-chat [data-testid=bot]").last
    label = bot.get_attribute("aria-label")
    assert "<" not in label and "2500亿元" in label
    assert "<" not in page.locator("#zc-chat [data-testid=user]").last.get_attribute("aria-label")
    bot.hover()
    page.locator("#zc-chat button[aria-label='Copy message']").last.click()
    page.wait_for_function("window.__copied.length > 0", timeout=5_000)
    copied = page.evaluate("window.__copied[window.__copied.length - 1]")
    assert "<" not in copied and "zc-" not in copied
    assert "2500亿元" in copied and "[1]" in copied
    refs = copied.split("\n")
    assert any(line.startswith("[1] 《深圳市培育发展半导体与集成电路产业集群行动计划") and "二.(一)" in line
               for line in refs), copied


def test_trash_icon_is_a_new_chat(page):
    ask(page, "深圳到2025年集成电路产业营收目标是多少？")
    page.locator("#zc-chat button[aria-label='清空对话']").click()
    page.wait_for_selector("#zc-citations .zc-empty", timeout=10_000)  # the citations go too
    # and the hidden history: a follow-up is no longer read as one about Shenzhen's targets
    page.fill("#zc-question textarea", "那苏州工业园区呢？")
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelectorAll('#zc-chat .zc-meta').length > 0", timeout=ANSWER_TIMEOUT_MS)
    assert page.locator("#zc-chat .zc-rewrite").count() == 0
    assert page.locator("#zc-chat .message-row").count() == 2


def test_page_chrome_has_no_dead_controls(page):
    # the k slider changed nothing for list answers: it is gone (the API keeps k)
    assert page.locator("#zc-k").count() == 0
    # the footer does not document Gradio's internal endpoints
    assert page.locator("footer button.show-api").count() == 0
    assert "通过 API 使用" not in page.locator("body").inner_text()
    assert "Use via API" not in page.locator("body").inner_text()


def test_login_page_is_the_products_own_with_roles_and_logout(browser, assistant, monkeypatch):
    """With keys, the page's own Chinese login; a user key sees no 上传规划, an admin key sees it and
    is not asked for the key again; 退出登录 ends the session."""
    from ui.server import UIServer

    from rag.api import create_app
    from rag.security import KeyConfig

    monkeypatch.setenv("RAG_ADMIN_KEYS", "admin-key")
    keys = KeyConfig(api_keys=frozenset({"user-key"}), admin_keys=frozenset({"admin-key"}))
    with UIServer(create_app(assistant, keys=keys, with_ui=True)) as url:
        context = browser.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN")
        pg = context.new_page()
        try:
            pg.goto(url + "/")
            pg.wait_for_selector("form input[type=password]", timeout=15_000)
            body = pg.locator("body").inner_text()
            assert "访问密钥" in body and "登录" in body
            assert "username" not in body.lower() and "password" not in body.lower()
            pg.screenshot(path=str(SHOTS / "10-login.png"))
            pg.fill("input[type=password]", "wrong")
            pg.click("button[type=submit]")
            pg.wait_for_selector(".error", timeout=10_000)
            assert "密钥不正确" in pg.locator(".error").inner_text()
            pg.fill("input[type=password]", "user-key")
            pg.click("button[type=submit]")
            pg.wait_for_selector("#zc-question textarea", timeout=30_000)
            pg.wait_for_selector(".zc-logout", timeout=15_000)
            pg.wait_for_timeout(1000)
            assert pg.get_by_role("tab", name="上传规划").count() == 0
            pg.click(".zc-logout")
            pg.wait_for_selector("form input[type=password]", timeout=15_000)
            pg.fill("input[type=password]", "admin-key")
            pg.click("button[type=submit]")
            pg.wait_for_selector(".zc-logout", timeout=30_000)
            assert "管理员" in pg.locator(".zc-user").inner_text()
            pg.get_by_role("tab", name="上传规划").click()
            pg.wait_for_selector("#zc-upload", timeout=10_000)
            assert not pg.locator("#zc-admin-key").is_visible()  # the login's key is enough
        finally:
            context.close()


def test_chat_page_works_behind_the_api_safety_layers(browser, assistant):
    """The page as `rag serve` mounts it: Host allow-list, same-origin writes only, nosniff and
    no-framing headers; its own calls (same origin) still answer."""
    from ui.server import UIServer

    from rag.api import create_app
    from rag.security import KeyConfig, allowed_hosts

    app = create_app(assistant, keys=KeyConfig(), with_ui=True, allowed_hosts=allowed_hosts("127.0.0.1", ""))
    with UIServer(app) as url, open_page(browser, url + "/") as pg:
        ask(pg, "深圳到2025年集成电路产业营收目标是多少？")
        assert "2500" in pg.locator("#zc-chat").inner_text()


def _top(page, selector: str) -> float:
    """The element's top in page coordinates (px from the top of the page)."""
    return page.locator(selector).last.evaluate("e => e.getBoundingClientRect().top + window.scrollY")


def test_comparison_is_a_table_and_a_list_answer_a_list(page):
    ask(page, "苏州工业园区和青浦区的人才目标有什么不同？")
    table = page.locator("#zc-chat .zc-answer").last.locator("table.zc-compare")
    assert table.locator("th").all_inner_texts() == ["苏州工业园区集成电路行动计划", "青浦区集成电路行动方案"]
    cells = table.locator("td")
    assert cells.count() == 2
    assert "15万人" in cells.nth(0).inner_text() and "[1]" in cells.nth(0).locator("sup.zc-mark").all_inner_texts()
    assert "5000名" in cells.nth(1).inner_text() and "[2]" in cells.nth(1).locator("sup.zc-mark").all_inner_texts()
    page.screenshot(path=str(SHOTS / "11-comparison.png"))
    # copied, it is the answer's own lines
    page.locator("#zc-chat [data-testid=bot]").last.hover()
    page.locator("#zc-chat button[aria-label='Copy message']").last.click()
    page.wait_for_function("window.__copied.length > 0", timeout=5_000)
    lines = page.evaluate("window.__copied[window.__copied.length - 1]").split("\n")
    assert lines[0].startswith("根据《苏州工业园区") and lines[1].startswith("根据《青浦区")

    ask(page, "深圳的重点任务包括哪些？")
    items = page.locator("#zc-chat .zc-answer").last.locator("ol.zc-list > li")
    assert items.count() >= 2
    assert all(item.locator("sup.zc-mark").count() >= 1 for item in items.all())
    page.screenshot(path=str(SHOTS / "12-list.png"))


def test_phone_shows_citations_under_the_answer_and_the_filters_folded(browser, page_url):
    with open_page(browser, page_url, viewport=PHONE) as page:
        # the filter box starts closed on a phone (and open on a desktop: see the filter test)
        page.wait_for_function("!document.querySelector('#zc-filters > button.label-wrap').classList.contains('open')",
                               timeout=10_000)
        assert not page.locator("#zc-documents").is_visible()
        ask(page, "苏州工业园区和青浦区的人才目标有什么不同？")
        answer, citations = _top(page, "#zc-chat [data-testid=bot]"), _top(page, "#zc-citations")
        assert 0 < citations - answer < 1.5 * PHONE["height"], (answer, citations)
        assert citations < _top(page, "#zc-filters")  # the citations come before the filters
        page.screenshot(path=str(SHOTS / "13-phone-answer.png"), full_page=True)
        # a tapped citation opens its context scrolled to the clause
        page.locator("#zc-citations .zc-card").last.tap()
        target = page.locator("#zc-context .zc-ctx-target")
        target.wait_for(timeout=15_000)
        page.wait_for_function("() => { const r = document.querySelector('#zc-context .zc-ctx-target')"
                               ".getBoundingClientRect(); return r.top >= 0 && r.top < innerHeight - 100; }",
                               timeout=5_000)
        page.screenshot(path=str(SHOTS / "14-phone-context.png"))


def test_phone_scrolls_to_the_outline_heading_tapped(browser, page_url):
    with open_page(browser, page_url, viewport=PHONE) as page:
        page.get_by_role("tab", name="文件与目录").click()
        qingpu = page.locator("#zc-overview .zc-doc-card").filter(has_text="青浦区促进集成电路产业高质量发展行动方案")
        qingpu.locator("summary").tap()
        qingpu.locator(".zc-ol-item", has_text="集成电路重点发展产业").tap()
        page.locator("#zc-section .zc-ctx-clause").first.wait_for(timeout=10_000)
        # the section's text, below the outline on a phone, is brought on screen
        page.wait_for_function("() => { const r = document.querySelector('#zc-section .zc-ctx')"
                               ".getBoundingClientRect(); return r.top >= 0 && r.top < 150; }",
                               timeout=5_000)
        page.screenshot(path=str(SHOTS / "15-phone-documents.png"))
