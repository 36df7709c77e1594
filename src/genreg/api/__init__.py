"""The HTTP API: a thin FastAPI shell over :class:`genreg.service.Registry`.

Build it with :func:`genreg.api.app.create_app`; nothing is created at import time.
"""
