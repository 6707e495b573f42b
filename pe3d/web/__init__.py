"""The web interface (``pe3d serve``): a gradio page to edit portraits and adapt new styles.

gradio is an optional extra (``pip install "pe3d[web]"``); :func:`require_gradio` turns its
absence into a one-line error. The page binds to ``127.0.0.1`` unless told otherwise.
"""

from __future__ import annotations

import os
import warnings
from typing import Callable, Optional

from pe3d.web.settings import LOCAL_HOST, WebSettings

INSTALL_HINT = 'pip install "pe3d[web]"'
"""What to run when gradio is missing."""


class WebUnavailable(RuntimeError):
    """gradio is not installed."""


def require_gradio() -> None:
    """Raise :class:`WebUnavailable` with the install command when gradio cannot be imported."""
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise WebUnavailable(f"the web interface needs gradio: {INSTALL_HINT}") from None


def is_public_host(host: str) -> bool:
    """Whether binding ``host`` exposes the page beyond this machine."""
    return host not in (LOCAL_HOST, "localhost", "::1") and not host.startswith("127.")


def serve(settings: WebSettings, pipe_factory: Optional[Callable] = None, block: bool = True):
    """Build and launch the page on ``settings.host:settings.port``; returns the gradio app.

    ``block=False`` returns once the server is up (tests; call ``app.close()`` to stop it).
    Uploads over ``settings.limits.max_bytes`` are refused by the server itself too.
    """
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home, before gradio is imported
    require_gradio()
    from pe3d.web.app import CSS, build_app

    if is_public_host(settings.host):
        warnings.warn(
            f"binding {settings.host}: the page (and its uploads and training) is reachable from other machines; "
            f"the default {LOCAL_HOST} keeps it local",
            stacklevel=2,
        )
    app = build_app(pipe_factory, settings)
    app.queue(default_concurrency_limit=1)
    app.launch(
        server_name=settings.host,
        server_port=settings.port,
        prevent_thread_lock=not block,
        max_file_size=settings.limits.max_bytes,
        show_error=False,
        quiet=not block,
        ssr_mode=False,
        css=CSS,
        footer_links=[],
    )
    return app
