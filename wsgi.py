"""The WSGI entry point for production servers: ``gunicorn wsgi:app``."""

from codeservice import create_app

app = create_app()
