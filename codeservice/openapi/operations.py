"""Describing an operation, beside its view.

A view names the function that describes it::

    @api.get("/code")
    @described_by(_code_operation)
    def code(): ...

where ``_code_operation(app)`` returns the operation object (built with
:func:`operation`, from the app's configuration where it depends on it).
:func:`codeservice.openapi.openapi_document` collects them from the app's
URL map: a route is in the document exactly when its view is described.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from flask import Flask

from .responses import DATABASE_ERRORS, JSON_BODY_ERRORS, with_errors
from .schemas import headers, json_content, ref

SESSION_SCHEME = "session"
SCANNER_SCHEME = "scanner"

OperationBuilder = Callable[[Flask], dict[str, Any]]
View = TypeVar("View", bound=Callable[..., Any])
_ATTRIBUTE = "openapi_operation"


def described_by(build: OperationBuilder) -> Callable[[View], View]:
    """Mark a view as described by ``build(app)``, the OpenAPI operation object of its route."""

    def mark(view: View) -> View:
        setattr(view, _ATTRIBUTE, build)
        return view

    return mark


def description_of(view: Callable[..., Any]) -> OperationBuilder | None:
    """What ``view`` is described by, through any decorators that wrap it (a rate limit's, say)."""
    while view is not None:
        build: OperationBuilder | None = getattr(view, _ATTRIBUTE, None)
        if build is not None:
            return build
        view = getattr(view, "__wrapped__", None)  # type: ignore[assignment]
    return None


def operation(
    operation_id: str,
    summary: str,
    tag: str,
    responses: dict[str, Any],
    *,
    errors: Iterable[str] = (),
    auth: str | None = None,
    request_schema: str | None = None,
    database: bool = False,
    description: str | None = None,
    parameters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An operation object: its responses plus the named error responses (``responses.ERROR_RESPONSES``).

    A request body adds the JSON body's errors, ``database`` the database's.
    """
    described: dict[str, Any] = {"operationId": operation_id, "summary": summary, "tags": [tag]}
    if description:
        described["description"] = description
    if parameters:
        described["parameters"] = parameters
    # Anyone may call an operation without ``auth`` (an empty requirement).
    described["security"] = [{auth: []}] if auth else [{}]
    if request_schema is not None:
        described["requestBody"] = {"required": True, "content": json_content(ref("schemas", request_schema))}
        errors = (*JSON_BODY_ERRORS, *errors)
    if database:
        errors = (*errors, *DATABASE_ERRORS)
    described["responses"] = with_errors(responses, errors)
    return described


def conditional_get(
    operation_id: str,
    summary: str,
    tag: str,
    *,
    what: str,
    content: dict[str, Any],
    max_age: int,
    description: str,
    database: bool = False,
) -> dict[str, Any]:
    """A public GET with a strong ETag, ``If-None-Match`` and 304, cacheable for ``max_age`` seconds."""
    cache_headers = headers(ETag="ETag", Cache_Control="CacheControlPublic")
    return operation(
        operation_id,
        summary,
        tag,
        {
            "200": {"description": what, "headers": cache_headers, "content": content},
            "304": {
                "description": "Unchanged since the `If-None-Match` tag: keep using the copy held.",
                "headers": cache_headers,
            },
        },
        description=(
            f"{description} Cacheable for {max_age} s (`Cache-Control: public, max-age={max_age}`); "
            "send the `ETag` held in `If-None-Match` to get 304 while it is unchanged."
        ),
        parameters=[ref("parameters", "IfNoneMatch")],
        database=database,
    )


def resident_envelope() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["resident"],
        "properties": {"resident": ref("schemas", "Resident")},
    }
