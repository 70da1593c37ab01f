"""The device cookie, the Flask side: its name and attributes, read from a request, set on a response.

OWASP, "Slow Down Online Guessing Attacks with Device Cookies": a browser
that logs in successfully gets a cookie naming (by MAC, not in the clear)
the phone it logged in to; its later logins to that phone are judged by that
cookie's own failures, not the phone's cool-down
(:func:`codeservice.residents.authenticate` makes and checks the value).

The cookie lives a year, is HttpOnly and SameSite=Strict (only the service's
own login forms and API send it), and is Secure wherever the session cookie
is; there it is a ``__Host-`` cookie (Path=/, no Domain), so no sibling
domain can set or shadow it.
"""

from __future__ import annotations

from flask import current_app, request
from werkzeug.wrappers import Response

from . import residents
from .context import data_keys
from .models import Resident

__all__ = ["DEVICE_COOKIE_MAX_AGE", "cookie_name", "presented", "remember", "set_device_cookie"]

NAME = "codeservice_device"
DEVICE_COOKIE_MAX_AGE = 365 * 24 * 3600


def cookie_name() -> str:
    """``__Host-codeservice_device`` when cookies are Secure (production), else ``codeservice_device``."""
    return f"__Host-{NAME}" if current_app.config["SESSION_COOKIE_SECURE"] else NAME


def presented(name: str | None = None) -> str | None:
    """The device cookie this request carries, unchecked (None without one); ``name``: another login's."""
    return request.cookies.get(name or cookie_name())


def remember(response: Response, resident: Resident) -> None:
    """Set a fresh device cookie for ``resident`` on ``response``: call it at every successful login."""
    set_device_cookie(response, cookie_name(), residents.new_device_cookie(data_keys(), resident))


def set_device_cookie(response: Response, name: str, value: str) -> None:
    """A device cookie ``name`` (the residents' or the console's login) with the attributes above."""
    response.set_cookie(
        name,
        value,
        max_age=DEVICE_COOKIE_MAX_AGE,
        path="/",
        secure=current_app.config["SESSION_COOKIE_SECURE"],
        httponly=True,
        samesite="Strict",
    )
