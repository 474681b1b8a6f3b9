"""The chat page's own login (Chinese, one key field, 退出登录) in front of the Gradio page when keys are set.

`install_login(app, keys)` adds GET/POST /login and GET /logout and returns the
`auth_dependency` Gradio is mounted with: the role ("admin" or "user") of the
session cookie, which the page reads as `gr.Request.username` (an admin sees
上传规划 and is not asked for the key again).  A visit to the page without a
session is sent to /login.  Sessions live in this process only; the cookie is
HttpOnly and SameSite=Strict.  No Gradio import here.
"""

from __future__ import annotations

import html
import secrets
import threading

from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

COOKIE = "zc_session"
MAX_SESSIONS = 10_000

_PAGE = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>登录 · 政策问答</title>
<style>
body {{ margin: 0; min-height: 100vh; display: flex; align-items: center; justify-content: center; background: #f3f4f6;
  font-family: "Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei", sans-serif; color: #1f2937; }}
form {{ background: #fff; padding: 28px 32px; border-radius: 12px; box-shadow: 0 4px 24px rgba(0,0,0,.08);
  width: min(380px, 90vw); box-sizing: border-box; }}
.logo {{ width: 44px; height: 44px; border-radius: 10px; background: linear-gradient(135deg, #1d4ed8, #0ea5e9);
  color: #fff; font-size: 24px; font-weight: 700; display: flex; align-items: center; justify-content: center; }}
h1 {{ font-size: 20px; margin: 12px 0 4px; }} p {{ color: #6b7280; font-size: 14px; margin: 0 0 16px; line-height: 1.6; }}
label {{ font-size: 14px; font-weight: 600; }}
input {{ width: 100%; box-sizing: border-box; padding: 10px; margin: 6px 0 14px; border: 1px solid #d1d5db;
  border-radius: 6px; font-size: 15px; }}
button {{ width: 100%; padding: 10px; border: 0; border-radius: 6px; background: #1d4ed8; color: #fff; font-size: 15px;
  cursor: pointer; }}
.error {{ color: #991b1b; background: #fef2f2; border: 1px solid #fecaca; border-radius: 6px; padding: 8px 10px;
  font-size: 14px; margin-bottom: 12px; }}
</style></head><body>
<form method="post" action="{action}"><div class="logo">策</div><h1>政策问答 · 登录</h1>
<p>请输入管理员发给您的访问密钥。管理员密钥登录后可上传规划文件。</p>{error}
<label for="key">访问密钥</label><input id="key" name="key" type="password" autocomplete="current-password"
 autofocus required><button type="submit">登录</button></form></body></html>"""


class Sessions:
    def __init__(self):
        self._roles: dict[str, str] = {}
        self._lock = threading.Lock()

    def open(self, role: str) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            if len(self._roles) >= MAX_SESSIONS:  # the oldest go first
                for old in list(self._roles)[:MAX_SESSIONS // 10]:
                    del self._roles[old]
            self._roles[token] = role
        return token

    def role(self, token: str | None) -> str | None:
        return self._roles.get(token or "")

    def close(self, token: str | None) -> None:
        with self._lock:
            self._roles.pop(token or "", None)


def _root(request: Request) -> str:
    return request.scope.get("root_path", "").rstrip("/")


def login_page(action: str, error: str = "") -> str:
    return _PAGE.format(action=html.escape(action), error=f'<div class="error" role="alert">{html.escape(error)}</div>'
                        if error else "")


def install_login(app: FastAPI, keys, page_path: str = "/"):
    """Routes for /login and /logout (before the page is mounted), the redirect to /login, and the
    `auth_dependency` for `gradio.mount_gradio_app`."""
    sessions = Sessions()
    app.state.ui_sessions = sessions

    @app.get("/login", include_in_schema=False)
    async def show_login(request: Request):
        if sessions.role(request.cookies.get(COOKIE)):
            return RedirectResponse(_root(request) + page_path, status_code=303)
        return HTMLResponse(login_page(_root(request) + "/login"))

    @app.post("/login", include_in_schema=False)
    async def do_login(request: Request, key: str = Form("", max_length=500)):
        role = keys.role(key.strip())
        if role is None:
            return HTMLResponse(login_page(_root(request) + "/login", "密钥不正确，请重新输入。"), status_code=401)
        response = RedirectResponse(_root(request) + page_path, status_code=303)
        response.set_cookie(COOKIE, sessions.open(role), httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path="/")
        return response

    @app.get("/logout", include_in_schema=False)
    async def do_logout(request: Request):
        sessions.close(request.cookies.get(COOKIE))
        response = RedirectResponse(_root(request) + "/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    @app.middleware("http")
    async def to_login(request: Request, call_next):
        if (request.method == "GET" and request.url.path in (page_path, _root(request) + page_path)
                and not sessions.role(request.cookies.get(COOKIE))):
            return RedirectResponse(_root(request) + "/login", status_code=303)
        return await call_next(request)

    def auth_dependency(request: Request) -> str | None:
        return sessions.role(request.cookies.get(COOKIE))

    return auth_dependency
