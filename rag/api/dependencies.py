"""Dependencies the routers declare with `Depends`: the API key check, the admin check, the service.

Everything per app (the key configuration, the `ApiService` over the one Assistant) lives on
`app.state`, so the routers are plain module-level `APIRouter`s, as in FastAPI's
"Bigger Applications" layout.
"""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..security import ADMIN, KeyConfig
from .errors import ApiError
from .service import ApiService

bearer = HTTPBearer(auto_error=False, description="API key (RAG_API_KEYS or RAG_ADMIN_KEYS)")


def _role(keys: KeyConfig, credentials: HTTPAuthorizationCredentials | None) -> str:
    if not keys.enabled:
        return ADMIN  # open server, bound to loopback only (see rag.security)
    if credentials is None:
        raise ApiError(401, "missing_api_key", "missing API key: send `Authorization: Bearer <key>`",
                       headers={"WWW-Authenticate": "Bearer"}, zh="缺少 API key：请发送 `Authorization: Bearer <key>`")
    role = keys.role(credentials.credentials)
    if role is None:
        raise ApiError(401, "invalid_api_key", "invalid API key", headers={"WWW-Authenticate": "Bearer"},
                       zh="API key 无效")
    return role


# async: FastAPI would run plain `def` dependencies in the thread pool, a thread hop per request.
async def require_key(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> str:
    """Any configured key (user or admin); nothing when the server has no keys."""
    return _role(request.app.state.keys, credentials)


async def require_admin(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> str:
    """An admin key: uploads, deletes and upload jobs."""
    keys = request.app.state.keys
    role = _role(keys, credentials)
    if role != ADMIN:
        raise ApiError(403, "admin_key_required", "uploads, deletes and upload jobs need an admin key"
                       + ("" if keys.admin_keys else " (none is configured: set RAG_ADMIN_KEYS)"),
                       zh="上传、删除和上传任务需要管理员 key"
                       + ("" if keys.admin_keys else "（尚未配置：请设置 RAG_ADMIN_KEYS）"))
    return role


async def metrics_access(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
    """/metrics needs a key like /v1, unless RAG_METRICS_PUBLIC (or `create_app(metrics_public=True)`)."""
    if not request.app.state.metrics_public:
        _role(request.app.state.keys, credentials)


async def get_service(request: Request) -> ApiService:
    """The app's `ApiService` (the Assistant, metrics and query slots)."""
    return request.app.state.service
