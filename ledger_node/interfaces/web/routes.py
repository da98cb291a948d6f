"""The JSON API on FastAPI, made from the two tables that name its routes: `api.GETS`
(reads) and `commands.COMMANDS` (authoring). Each route's OpenAPI entry (parameters,
body, security) comes from its row, so the served document cannot drift from the code.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from ledger_node.interfaces import commands
from ledger_node.interfaces.api import FACTS_ROUTE, GETS, Api, Get

JSON_ERROR = {
    "description": "the request is refused",
    "content": {
        "application/json": {
            "schema": {"type": "object", "properties": {"error": {"type": "string"}}}
        }
    },
}


class PrettyJSON(JSONResponse):
    """JSON as the API has always written it: indented, sorted keys, a final newline."""

    def render(self, content: Any) -> bytes:
        return (json.dumps(content, indent=2, sort_keys=True) + "\n").encode()


def _get_endpoint(api: Api, get: Get) -> Callable[[Request], Any]:
    def endpoint(request: Request) -> Response:
        return PrettyJSON(api.get(get.path, parse_qs(request.url.query)))

    return endpoint


def _post_endpoint(
    api: Api, path: str, authorize: Callable[[Request], object]
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        authorize(request)
        body = await request.body()
        content_type = request.headers.get("content-type", commands.JSON)
        query = parse_qs(request.url.query)
        return PrettyJSON(await run_in_threadpool(api.post, path, query, body, content_type))

    return endpoint


def _body_schema(c: commands.Command) -> dict[str, str]:
    return {"type": "object" if c.content == commands.JSON else "string"}


def api_router(api: Api, authorize: Callable[[Request], object]) -> APIRouter:
    """The JSON API's routes; `authorize` raises unless the request may author."""
    router = APIRouter()
    for get in GETS.values():
        router.add_api_route(
            get.path,
            _get_endpoint(api, get),
            methods=["GET"],
            summary=get.summary,
            response_class=PrettyJSON,
            responses={400: JSON_ERROR},
            openapi_extra={
                "parameters": [
                    {
                        "name": name,
                        "in": "query",
                        "required": required,
                        "description": text,
                        "schema": {"type": "string"},
                    }
                    for name, required, text in get.params
                ]
            },
        )
    for path in dict.fromkeys(c.route for c in commands.COMMANDS):
        rows = [c for c in commands.COMMANDS if c.route == path]
        router.add_api_route(
            path,
            _post_endpoint(api, path, authorize),
            methods=["POST"],
            summary="; ".join(dict.fromkeys(c.help for c in rows)),
            description=f"Authors a signed `{rows[0].fact.TYPE}` fact as this node.",
            response_class=PrettyJSON,
            responses={400: JSON_ERROR, 401: JSON_ERROR, 403: JSON_ERROR, 413: JSON_ERROR},
            openapi_extra={
                "requestBody": {
                    "required": True,
                    "content": {c.content: {"schema": _body_schema(c)} for c in rows},
                },
                "security": [{"token": []}, {"session": []}],
            },
        )
    router.add_api_route(
        FACTS_ROUTE,
        _post_endpoint(api, FACTS_ROUTE, authorize),
        methods=["POST"],
        summary="Admit a fact signed elsewhere (`mlg-node sign`)",
        description="Admits the signed fact as one from the broker would be, and publishes"
        " it on its retained topic once accepted. Answers its status: accepted, replay or"
        " held (for a predecessor this node has not seen).",
        response_class=PrettyJSON,
        responses={400: JSON_ERROR, 401: JSON_ERROR, 403: JSON_ERROR, 413: JSON_ERROR},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/octet-stream": {"schema": {"type": "string"}}},
            },
            "security": [{"token": []}, {"session": []}],
        },
    )
    return router
