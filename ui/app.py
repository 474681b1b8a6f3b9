"""The Gradio page: chat with citations, document outlines, and (for admins) plan upload.

`build_ui(assistant)` only lays out components and wires them to the pure
functions in `ui.handlers`.  The page's CSS travels inside the page itself (a
<style> element in the header), because `gradio.mount_gradio_app` replaces any
css given to `gr.Blocks`; so the look is the same however the Blocks is mounted.
"""

from __future__ import annotations

import gradio as gr

from . import handlers as h

TITLE = "政策问答 · 集成电路产业规划"
# Gradio's footer: no "Use via API" (it documents Gradio's internal endpoints; the API is /v1, see /docs)
FOOTER_LINKS = ["settings"]

# Written for this page (not taken from the evaluation set); they show the kinds
# of question the assistant handles: figures, lists, a comparison, English.
EXAMPLES = [
    "苏州工业园区计划培育多少家IDM企业？",
    "青浦区的集成电路产业空间布局是怎样的？",
    "“十二五”规划对集成电路装备和材料提出了什么目标？",
    "厦门湖里区是如何支持集成电路人才的？",
    "比较深圳和青浦到2025年的产业规模目标",
    "What does the Shenzhen plan say about EDA software?",
]

CSS = """
:root, :root .dark, .dark {
  --button-primary-background-fill: #1d4ed8; --button-primary-background-fill-hover: #1e40af;
  --button-primary-border-color: #1d4ed8; --button-primary-text-color: #fff;
  --color-accent: #1d4ed8; --slider-color: #1d4ed8; --checkbox-background-color-selected: #1d4ed8;
  --loader-color: #1d4ed8;
  --font: "Noto Sans CJK SC", "Source Han Sans SC", "PingFang SC", "Microsoft YaHei", "WenQuanYi Micro Hei",
          "Source Sans Pro", ui-sans-serif, system-ui, sans-serif;
}
:root {
  --zc-accent: #1d4ed8; --zc-accent-soft: #eff6ff; --zc-accent-ink: #1e3a8a; --zc-ink: #1f2937; --zc-muted: #6b7280;
  --zc-line: #e5e7eb; --zc-warn: #b45309; --zc-warn-line: #f59e0b; --zc-warn-soft: #fffbeb; --zc-warn-ink: #78350f;
  --zc-mark: #fde68a; --zc-mark-ink: inherit; --zc-code-bg: #f3f4f6; --zc-code-ink: #374151;
  --zc-err-bg: #fef2f2; --zc-err-ink: #991b1b; --zc-err-line: #fecaca;
  --zc-ok-bg: #f0fdf4; --zc-ok-ink: #14532d; --zc-ok-line: #bbf7d0; --color-accent-soft: #eff6ff;
}
:root .dark, .dark {
  --zc-accent: #60a5fa; --zc-accent-soft: #172554; --zc-accent-ink: #bfdbfe; --zc-ink: #e5e7eb; --zc-muted: #9ca3af;
  --zc-line: #374151; --zc-warn: #fbbf24; --zc-warn-line: #d97706; --zc-warn-soft: #2b2111; --zc-warn-ink: #fde68a;
  --zc-mark: #a16207; --zc-mark-ink: #fff; --zc-code-bg: #374151; --zc-code-ink: #e5e7eb;
  --zc-err-bg: #3b1414; --zc-err-ink: #fecaca; --zc-err-line: #7f1d1d;
  --zc-ok-bg: #052e16; --zc-ok-ink: #bbf7d0; --zc-ok-line: #166534; --color-accent-soft: #172554;
}
.gradio-container { width: 100% !important; max-width: 1360px !important; margin: 0 auto !important; font-family: var(--font) !important; }
.zc-header { display: flex; align-items: center; gap: 14px; padding: 6px 2px 2px; }
.zc-logo { width: 44px; height: 44px; border-radius: 10px; background: linear-gradient(135deg, #1d4ed8, #0ea5e9);
  color: #fff; font-size: 24px; font-weight: 700; display: flex; align-items: center; justify-content: center; flex: none; }
.zc-header h1 { margin: 0; font-size: 24px; font-weight: 700; color: var(--zc-ink); letter-spacing: .5px; }
.zc-user { margin-left: auto; font-size: 13px; color: var(--zc-muted); white-space: nowrap; }
.zc-user a { color: var(--zc-accent); }
.zc-header p { margin: 2px 0 0; color: var(--zc-muted); font-size: 14px; }

/* chat bubbles and the input row */
.zc-answer, .zc-refusal { line-height: 1.75; }
.zc-body { font-size: 15px; }
.zc-mark { color: var(--zc-accent); font-weight: 700; font-size: 0.72em; margin: 0 1px; }
.zc-meta { margin-top: 6px; font-size: 12px; color: var(--zc-muted); }
.zc-chip { display: inline-block; font-size: 12px; color: #fff !important; background: #1d4ed8; border-radius: 8px;
  padding: 0 7px; margin-right: 6px; }
.zc-rewrite { font-size: 13px; color: var(--zc-accent-ink); background: var(--zc-accent-soft); border-left: 3px solid var(--zc-accent);
  padding: 4px 8px; margin-bottom: 8px; border-radius: 4px; }
.zc-rewrite b { color: var(--zc-accent-ink); }
.zc-refusal { border: 1px solid var(--zc-warn-line); border-left: 4px solid var(--zc-warn-line); background: var(--zc-warn-soft);
  border-radius: 6px; padding: 8px 10px; color: var(--zc-warn-ink); }
.zc-refusal .zc-meta { color: var(--zc-warn-ink); opacity: .85; }
.zc-refusal-title { font-weight: 700; color: var(--zc-warn); margin-bottom: 2px; }
.zc-gen { font-size: 12px; padding: 2px 8px; margin-bottom: 6px; border-radius: 4px; }
.zc-gen-ok { color: #166534; background: #dcfce7; }
.zc-gen-fallback { color: var(--zc-warn-ink); background: var(--zc-warn-soft); }
/* listed items and the per-document comparison table */
.zc-body ol.zc-list, .zc-body ul.zc-list { margin: 4px 0 4px 1.5em !important; padding: 0 !important; }
.zc-body ol.zc-list { list-style: decimal !important; } .zc-body ul.zc-list { list-style: disc !important; }
.zc-body .zc-list li { margin: 3px 0 !important; padding-left: 2px; display: list-item !important; }
.zc-compare-wrap { overflow-x: auto; margin: 4px 0 2px; max-width: 100%; }
.zc-body table.zc-compare { border-collapse: collapse !important; width: 100%; table-layout: fixed; font-size: 14px; margin: 0 !important; }
.zc-body .zc-compare th, .zc-body .zc-compare td { border: 1px solid var(--zc-line) !important; padding: 6px 8px !important;
  vertical-align: top; text-align: left; line-height: 1.7; word-break: break-word; }
.zc-body .zc-compare th { background: var(--zc-accent-soft) !important; color: var(--zc-accent-ink); font-weight: 600; font-size: 13px; }
.zc-body .zc-compare td { background: var(--background-fill-primary); }
.zc-compare.zc-cols-3 { min-width: 480px; } .zc-compare.zc-cols-4 { min-width: 640px; }
.zc-cursor { animation: zc-blink 1s steps(2) infinite; color: var(--zc-accent); }
@keyframes zc-blink { 50% { opacity: 0; } }
.zc-pending { color: var(--zc-muted); display: flex; align-items: center; gap: 8px; font-size: 14px; }
.zc-spinner { width: 14px; height: 14px; border: 2px solid var(--zc-line); border-top-color: var(--zc-accent);
  border-radius: 50%; display: inline-block; animation: zc-spin .8s linear infinite; }
@keyframes zc-spin { to { transform: rotate(360deg); } }
#zc-inputrow { align-items: center; }
#zc-inputrow button { align-self: stretch; }
#zc-status:not(:has(.zc-error)) { display: none; }
.zc-error { color: var(--zc-err-ink); background: var(--zc-err-bg); border: 1px solid var(--zc-err-line); border-radius: 6px;
  padding: 8px 10px; font-size: 14px; }
.zc-ok { color: var(--zc-ok-ink); background: var(--zc-ok-bg); border: 1px solid var(--zc-ok-line); border-radius: 6px; padding: 8px 10px; }
code { font-family: ui-monospace, "Noto Sans Mono CJK SC", monospace; }

/* citation panel */
#zc-citations { max-height: 640px; overflow-y: auto !important; }
.zc-panel-title { font-weight: 700; font-size: 15px; color: var(--zc-ink); margin: 2px 0 8px; }
.zc-count { display: inline-block; min-width: 20px; padding: 0 6px; border-radius: 10px; background: var(--zc-accent-soft);
  color: var(--zc-accent); font-size: 12px; text-align: center; }
.zc-panel-note { font-size: 13px; color: var(--zc-warn); margin: -4px 0 8px; }
.zc-empty p { color: var(--zc-muted); font-size: 13px; line-height: 1.7; }
.zc-card { border: 1px solid var(--zc-line); border-radius: 8px; padding: 10px 12px; margin-bottom: 10px; cursor: pointer;
  background: var(--background-fill-primary); transition: border-color .15s, box-shadow .15s; }
.zc-card:hover, .zc-card:focus, .zc-card.zc-active { border-color: var(--zc-accent); box-shadow: 0 1px 6px rgba(29,78,216,.15); outline: none; }
.zc-cites-refused .zc-card { border-style: dashed; }
.zc-card-top { display: flex; gap: 6px; align-items: baseline; }
.zc-badge { color: var(--zc-accent); font-weight: 700; flex: none; }
.zc-cites-refused .zc-badge { color: var(--zc-muted); }
.zc-doc { font-weight: 600; color: var(--zc-ink); font-size: 14px; }
.zc-path { font-size: 12px; color: var(--zc-muted); margin: 3px 0 2px; }
.zc-clause-id { font-size: 12px; color: var(--zc-muted); }
.zc-clause-id code { font-size: 12px; background: var(--zc-code-bg); color: var(--zc-code-ink); padding: 0 4px; border-radius: 3px; }
.zc-text { font-size: 14px; line-height: 1.75; margin-top: 6px; color: var(--zc-ink); word-break: break-word; }
mark.zc-support { background: var(--zc-mark); color: var(--zc-mark-ink); padding: 1px 0; border-radius: 2px; }
.zc-copy { display: none !important; }
.zc-more { font-size: 12px; color: var(--zc-accent); margin-top: 4px; text-align: right; }

/* context drawer */
.zc-drawer { position: fixed; top: 0; right: 0; height: 100vh; width: min(560px, 100vw); z-index: 1000; overflow-y: auto;
  background: var(--background-fill-primary); box-shadow: -8px 0 24px rgba(0,0,0,.18); padding: 18px 20px 40px; }
.zc-drawer-close { position: sticky; top: 0; float: right; border: 1px solid var(--zc-line); background: var(--background-fill-primary);
  border-radius: 6px; padding: 2px 10px; cursor: pointer; font-size: 13px; color: var(--zc-ink); }
.zc-ctx-doc { font-size: 13px; color: var(--zc-muted); margin-bottom: 10px; }
.zc-drawer .zc-ctx-doc, .zc-drawer .zc-panel-title { margin-right: 84px; }
.zc-ctx-doc code { background: var(--zc-code-bg); color: var(--zc-code-ink); padding: 0 4px; border-radius: 3px; }
.zc-ctx-section { font-size: 12px; font-weight: 600; color: var(--zc-accent-ink); margin: 12px 0 4px; padding-bottom: 2px;
  border-bottom: 1px solid var(--zc-line); }
.zc-ctx-clause { padding: 6px 10px; border-left: 3px solid transparent; margin: 4px 0; }
.zc-ctx-target { border-left-color: var(--zc-accent); background: var(--zc-accent-soft); border-radius: 0 6px 6px 0; }
.zc-here { margin-left: 6px; font-size: 11px; color: #fff; background: #1d4ed8; padding: 0 6px; border-radius: 8px; }
.zc-resp { font-size: 12px; color: var(--zc-muted); margin-top: 2px; }

/* documents tab */
#zc-overview, #zc-section { max-height: calc(100vh - 190px); min-height: 420px; overflow-y: auto !important; padding-right: 4px; }
.zc-doc-card { border: 1px solid var(--zc-line); border-radius: 8px; padding: 12px 14px; margin-bottom: 12px; }
.zc-doc-title { font-weight: 700; font-size: 16px; color: var(--zc-ink); }
.zc-doc-meta { display: flex; flex-wrap: wrap; gap: 4px 16px; font-size: 13px; color: var(--zc-muted); margin: 6px 0; }
.zc-doc-meta b { color: var(--zc-ink); font-weight: 600; margin-right: 2px; }
.zc-doc-note { font-size: 12px; color: var(--zc-warn); margin-bottom: 4px; }
.zc-doc-card summary { cursor: pointer; font-size: 13px; color: var(--zc-accent); }
.zc-outline { list-style: none !important; padding: 4px 0 0 !important; margin: 0 !important; }
.zc-ol-item { list-style: none !important; margin: 0 !important; font-size: 14px; line-height: 1.5; padding: 3px 6px;
  border-radius: 4px; cursor: pointer; color: var(--zc-ink); }
.zc-ol-item::marker { content: none; }
.zc-ol-item:hover, .zc-ol-item:focus, .zc-ol-item.zc-active { background: var(--zc-accent-soft); outline: none; }
.zc-ol-item code { font-size: 12px; color: var(--zc-muted); margin-right: 4px; }
.zc-depth-0 { font-weight: 600; } .zc-depth-2 { padding-left: 22px; } .zc-depth-3 { padding-left: 34px; }
.zc-depth-4 { padding-left: 44px; } .zc-depth-5 { padding-left: 56px; } .zc-depth-6 { padding-left: 66px; }

/* upload tab */
.zc-progress { font-size: 14px; color: var(--zc-ink); }
.zc-progress-bar { height: 6px; border-radius: 3px; background: var(--zc-accent-soft); overflow: hidden; margin-bottom: 6px; }
.zc-progress-bar span { display: block; height: 100%; width: 35%; background: var(--zc-accent); border-radius: 3px;
  animation: zc-slide 1.2s ease-in-out infinite; }
@keyframes zc-slide { from { transform: translateX(-100%); } to { transform: translateX(300%); } }
.zc-help { font-size: 13px; color: var(--zc-muted); line-height: 1.7; }

/* phones and narrow windows, where Gradio stacks the two columns (below 1024 px): the citations come
   right after the chat and its input, the filters (closed on load, see _CHAT_JS) after them */
@media (max-width: 1023px) {
  #zc-citations { order: -1; max-height: none; }
  #zc-section { max-height: none; min-height: 0; }  /* below the outline: the page scrolls, not a box */
}
"""

# Cards in the citation panel (and outline entries) report their ids to Python on click or Enter.
_CLICK_JS = """
const pick = (e) => {
  const item = e.target.closest('[data-SELECTOR]');
  if (!item || !element.contains(item)) return;
  element.querySelectorAll('.zc-active').forEach(x => x.classList.remove('zc-active'));
  item.classList.add('zc-active');
  trigger('click', Object.assign({}, item.dataset));
};
element.addEventListener('click', pick);
element.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); pick(e); } });
"""

# The context drawer closes with its button, a click outside it, or Escape; when it opens with the
# clause below its fold (a phone, long neighbours), it scrolls to the clause.
_DRAWER_JS = """
watch('value', () => {
  const drawer = element.querySelector('.zc-drawer');
  const target = drawer && drawer.querySelector('.zc-ctx-target');
  if (!target) return;
  drawer.scrollTop = 0;
  if (target.offsetTop + target.offsetHeight > drawer.clientHeight) {
    drawer.scrollTop = target.offsetTop - 56;
  }
});
const close = () => { props.value = ''; };
element.addEventListener('click', (e) => { if (e.target.closest('.zc-drawer-close')) close(); });
document.addEventListener('keydown', (e) => { if (e.key === 'Escape' && props.value) close(); });
document.addEventListener('mousedown', (e) => {
  if (props.value && !element.contains(e.target) && !e.target.closest('#zc-citations')) close();
});
"""

# A heading tapped in the outline: its text shows from the top, and is scrolled into view when the panel
# is off screen (on a phone it sits below the outline); beside the outline (desktop) nothing moves.
_SECTION_JS = """
watch('value', () => {
  const panel = element.closest('#zc-section') || element;
  panel.scrollTop = 0;
  if (!element.querySelector('.zc-ctx:not(.zc-empty), .zc-error')) return;
  const top = panel.getBoundingClientRect().top;
  if (top < 0 || top > window.innerHeight * 0.5) panel.scrollIntoView({behavior: 'smooth', block: 'start'});
});
"""


# The chat's copy buttons copy plain text (the answer with its [n] markers and the list of cited
# clauses, from the bubble's hidden .zc-copy), and each message's aria-label is that text, not its HTML.
_CHAT_JS = """
(() => {  // own scope: js_on_load's parameters (element, props, watch, ...) are not shadowed
const chat = () => document.getElementById('zc-chat');
const plain = (msg) => {
  const src = msg.querySelector('.zc-copy');
  if (src) return src.textContent;
  const body = msg.querySelector('.message-content') || msg;
  return body.innerText.trim();
};
const zcLabel = () => {
  const root = chat();
  if (!root) return;
  root.querySelectorAll('[data-testid=bot][aria-label], [data-testid=user][aria-label]').forEach((m) => {
    const want = (m.dataset.testid === 'user' ? '提问：' : '回答：') + plain(m);
    if (m.getAttribute('aria-label') !== want) m.setAttribute('aria-label', want);
  });
};
const zcWatch = () => {
  const root = chat();
  if (!root) { setTimeout(zcWatch, 200); return; }
  new MutationObserver(zcLabel).observe(root, {subtree: true, childList: true, characterData: true,
                                             attributes: true, attributeFilter: ['aria-label']});
  zcLabel();
};
zcWatch();
// where the columns stack (phones, narrow windows), the filter box starts closed: the citations come first
// (a click before the accordion is live does nothing: it is repeated until the box shows closed)
const zcFold = (tries) => {
  const button = document.querySelector('#zc-filters > button.label-wrap');
  if (button && !button.classList.contains('open')) return;
  if (button) button.click();
  if (tries > 0) setTimeout(() => zcFold(tries - 1), 150);
};
if (window.matchMedia('(max-width: 1023px)').matches) zcFold(50);  // the CSS's narrow-screen query
document.addEventListener('click', (e) => {
  const button = e.target.closest('#zc-chat .message-buttons button');
  if (!button || !button.querySelector('svg') || !/copy|复制/i.test(button.getAttribute('aria-label') || '')) return;
  const row = button.closest('.message-buttons');
  const messages = [...chat().querySelectorAll('[data-testid=bot], [data-testid=user]')]
    .filter((m) => m.compareDocumentPosition(row) & Node.DOCUMENT_POSITION_FOLLOWING);
  if (!messages.length) return;
  e.stopPropagation(); e.preventDefault();
  const text = plain(messages[messages.length - 1]);
  if (navigator.clipboard) navigator.clipboard.writeText(text);
}, true);
})();
"""


def header_html(assistant, user: str | None = None) -> str:
    """The title and the corpus line; with the page's login (rag/api/login.py), who is logged in and 退出登录."""
    corpus = assistant.corpus  # one published snapshot
    n = len(corpus.documents)
    clauses = sum(len(p.clauses) for p in corpus.parsed.values())
    return (f"<style>{CSS}</style>"
            '<div class="zc-header"><div class="zc-logo">策</div><div>'
            f"<h1>{TITLE}</h1>"
            f"<p>基于 {n} 份集成电路产业规划原文（{clauses} 条条款）的检索问答：每句回答都摘自原文并标注出处，"
            "文件中没有的内容会明确说明。</p></div>"
            + (f'<div class="zc-user">{"管理员" if user == "admin" else "已登录"} · '
               '<a class="zc-logout" href="logout">退出登录</a></div>' if user else "")
            + "</div>")


def _drawer(inner: str) -> str:
    return f'<div class="zc-drawer" role="dialog" aria-label="条款上下文"><button class="zc-drawer-close">关闭 ✕</button>{inner}</div>'


def build_ui(assistant) -> gr.Blocks:
    """The whole page for one `Assistant` (shared by all sessions; per-session state lives in gr.State)."""
    corpus = assistant.corpus  # only for the first layout: every handler reads the published one

    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:
        header = gr.HTML(header_html(assistant), elem_id="zc-header")
        history = gr.State([])
        quotes = gr.State({})
        version = gr.State("")  # h.corpus_version of what this session shows ("" until the page loads)

        with gr.Tabs():
            with gr.Tab("问答", id="ask"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=7, min_width=420):
                        chatbot = gr.Chatbot(
                            label="对话", height=500, layout="bubble", elem_id="zc-chat",
                            placeholder="**向规划原文提问**<br>问某地的产业目标、扶持政策、重点工程……"
                                        "回答后可以接着追问，如“那苏州工业园区呢？”",
                            examples=[{"text": q} for q in EXAMPLES],
                            buttons=["copy"], feedback_options=None, autoscroll=True)
                        status = gr.HTML("", elem_id="zc-status", js_on_load=_CHAT_JS)
                        with gr.Row(equal_height=True, elem_id="zc-inputrow"):
                            question = gr.Textbox(
                                show_label=False, placeholder="输入问题，按 Enter 发送",
                                lines=1, max_lines=4, scale=8, container=False, elem_id="zc-question",
                                autofocus=True)
                            send = gr.Button("发送", variant="primary", scale=1, min_width=80, elem_id="zc-send")
                            clear = gr.Button("新对话", variant="secondary", scale=1, min_width=80, elem_id="zc-clear")
                    with gr.Column(scale=5, min_width=340):
                        with gr.Accordion("检索范围", open=True, elem_id="zc-filters"):
                            documents = gr.Dropdown(
                                choices=h.doc_choices(corpus), value=[], multiselect=True, label="限定文件",
                                info="不选则在全部文件中检索；问题中提到地名时会自动定位到相应文件",
                                elem_id="zc-documents")
                            backends = h.backend_choices()
                            backend = gr.Radio(
                                choices=backends, label="回答方式",
                                value=h.default_backend(assistant, backends),
                                info="模型生成的回答会逐句核对引用和数字，不通过则改用摘录原文",
                                visible=len(backends) > 1, elem_id="zc-backend")
                        citations = gr.HTML(h.EMPTY_CITATIONS, elem_id="zc-citations",
                                            js_on_load=_CLICK_JS.replace("SELECTOR", "clause"))
                        context = gr.HTML(h.EMPTY_CONTEXT, elem_id="zc-context", js_on_load=_DRAWER_JS)

            with gr.Tab("文件与目录", id="docs") as docs_tab:
                with gr.Row(equal_height=False):
                    with gr.Column(scale=6, min_width=380):
                        overview = gr.HTML(h.documents_html(corpus), elem_id="zc-overview",
                                           js_on_load=_CLICK_JS.replace("SELECTOR", "heading"))
                    with gr.Column(scale=5, min_width=340):
                        section = gr.HTML(h.EMPTY_SECTION, elem_id="zc-section", js_on_load=_SECTION_JS)

            # shown on load to whoever may upload (h.upload_access): never to a user logged in with a
            # non-admin key, not even for a moment
            with gr.Tab("上传规划", id="upload", visible=False) as upload_tab:
                if not h.upload_available(assistant):
                    gr.HTML(h.error_html("当前版本的服务不支持上传文件（缺少 add_document）。"), elem_id="zc-upload-status")
                else:
                    gr.HTML('<p class="zc-help">上传一份新的规划文件（.txt、.pdf 或 .docx），解析成条款后加入索引，'
                            "完成后即可在问答中检索。需要管理员密钥。</p>")
                    with gr.Row(equal_height=False):
                        with gr.Column(scale=1, min_width=320):
                            admin_key = gr.Textbox(label="管理员密钥", type="password", elem_id="zc-admin-key",
                                                   info="以管理员密钥登录时无需再填")
                            upload_file = gr.File(label="规划文件", file_types=list(h.UPLOAD_EXTENSIONS),
                                                  type="filepath", elem_id="zc-upload-file")
                        with gr.Column(scale=1, min_width=320):
                            up_title = gr.Textbox(label="标题", elem_id="zc-up-title",
                                                  placeholder="不填则用文件名，例如：某市集成电路产业发展行动计划（2024-2026年）")
                            up_issuer = gr.Textbox(label="发文机关", elem_id="zc-up-issuer", placeholder="例如：某市人民政府办公厅")
                            with gr.Row():
                                up_date = gr.Textbox(label="日期", elem_id="zc-up-date", placeholder="YYYY-MM-DD")
                                up_region = gr.Textbox(label="地区", elem_id="zc-up-region", placeholder="例如：江苏省无锡市")
                            up_aliases = gr.Textbox(
                                label="别名", elem_id="zc-up-aliases", placeholder="例如：无锡, 锡城, Wuxi",
                                info="问题中出现这些名称时检索会定位到该文件（简称、英文名），用逗号分隔")
                            up_docid = gr.Textbox(label="编号", elem_id="zc-up-docid",
                                                  placeholder="例如：wuxi-2024（不填则由文件名生成）")
                    upload_btn = gr.Button("上传并建立索引", variant="primary", elem_id="zc-upload")
                    upload_status = gr.HTML("", elem_id="zc-upload-status")

        # -- events -------------------------------------------------------------------

        outputs = [chatbot, history, citations, quotes, status, question, context]

        def ask(q, chat, hist, docs, bk):
            for u in h.chat_turn(assistant, q, chat, hist, docs, None, backend=bk):
                keep = u.citations is None  # an error leaves the panel, and the open context, as they were
                yield (u.chat, u.history, gr.skip() if keep else u.citations, gr.skip() if keep else u.quotes,
                       u.status, u.question, gr.skip() if keep else "")

        ask_args = dict(fn=ask, inputs=[question, chatbot, history, documents, backend], outputs=outputs,
                        concurrency_limit=4, show_progress="hidden")
        question.submit(**ask_args)
        send.click(**ask_args)

        def ask_example(chat, hist, docs, bk, evt: gr.SelectData):
            yield from ask((evt.value or {}).get("text", ""), chat, hist, docs, bk)

        chatbot.example_select(ask_example, inputs=[chatbot, history, documents, backend], outputs=outputs,
                               concurrency_limit=4, show_progress="hidden")

        def new_chat():
            return [], [], h.EMPTY_CITATIONS, {}, "", "", ""

        clear.click(new_chat, outputs=outputs, show_progress="hidden")
        chatbot.clear(new_chat, outputs=outputs, show_progress="hidden")  # the trash icon is 新对话 too

        def show_context(qs, evt: gr.EventData):
            data = evt._data or {}
            if not data.get("doc") or not data.get("clause"):
                return gr.skip()
            return _drawer(h.context_html(assistant.corpus, data["doc"], data["clause"],
                                          (qs or {}).get(str(data.get("n")), [])))

        citations.click(show_context, inputs=[quotes], outputs=[context], show_progress="hidden")

        def show_section(evt: gr.EventData):
            data = evt._data or {}
            if not data.get("doc") or not data.get("heading"):
                return gr.skip()
            return h.section_html(assistant.corpus, data["doc"], data["heading"])

        overview.click(show_section, outputs=[section], show_progress="hidden")

        # Uploads and deletes publish a new document list: each session catches up on load and at
        # its every action (this one's upload also right after it), never showing a stale list.
        def refresh(seen, chosen, request: gr.Request):
            now = h.corpus_version(assistant)
            if now == seen:
                return gr.skip(), gr.skip(), gr.skip(), gr.skip()
            corpus_now = assistant.corpus
            kept = [d for d in chosen or [] if d in corpus_now.parsed]
            return (header_html(assistant, getattr(request, "username", None)), gr.Dropdown(choices=h.doc_choices(corpus_now), value=kept),
                    h.documents_html(corpus_now), now)

        refresh_args = dict(fn=refresh, inputs=[version, documents], outputs=[header, documents, overview, version],
                            show_progress="hidden", queue=False)
        gr.on([demo.load, question.submit, send.click, clear.click, chatbot.clear, chatbot.example_select,
               citations.click, overview.click, docs_tab.select, documents.focus], **refresh_args)

        def access(request: gr.Request):
            tab, key = h.upload_access(getattr(request, "username", None))
            return gr.Tab(visible=tab), (gr.Textbox(visible=key) if h.upload_available(assistant) else gr.skip())

        demo.load(access, outputs=[upload_tab, admin_key if h.upload_available(assistant) else gr.State()],
                  show_progress="hidden", queue=False)

        if h.upload_available(assistant):
            def upload(key, path, title, issuer, date, region, aliases, doc_id, request: gr.Request):
                admin = getattr(request, "username", None) == "admin"  # logged in with an admin key
                for html, _ in h.run_upload(assistant, key, path, title, issuer, date, region, aliases=aliases,
                                            doc_id=doc_id, admin=admin):
                    yield html

            upload_btn.click(upload, inputs=[admin_key, upload_file, up_title, up_issuer, up_date, up_region,
                                             up_aliases, up_docid],
                             outputs=[upload_status], concurrency_limit=1,
                             show_progress="hidden").then(**refresh_args)
    return demo


def mount_ui(app, assistant, path: str = "/"):
    """Mount the page on a FastAPI app (the API keeps its own routes, e.g. /v1)."""
    return gr.mount_gradio_app(app, build_ui(assistant), path=path, footer_links=FOOTER_LINKS)
