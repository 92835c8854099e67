"""Running the app under uvicorn with the shutdown behaviour process managers expect.

SIGTERM (systemd ``stop``, Kubernetes pod deletion, ``docker stop``) asks for a graceful stop
within ``shutdown_timeout`` seconds (``--shutdown-timeout``), a deadline for the whole process:

1. uvicorn stops accepting connections and lets in-flight requests finish;
2. :func:`abort_margin` seconds before the deadline, ``on_abort`` runs (``sarvlm serve``: the
   engine's :meth:`~sarvlm.serve.engine.Engine.cancel_all`): generation still running stops at the
   end of its decoding step and each such request is *answered* (``finish_reason: "abort"``; a
   stream ends with ``data: [DONE]``) rather than cut off, and the process normally exits before
   the deadline;
3. at the deadline (rounded up to whole seconds, uvicorn's unit) uvicorn cancels whatever is
   still open (a request stuck outside generation), and the app's lifespan stops the engine;
4. the process **exits 0**. Stock uvicorn re-raises the signal after its graceful shutdown, so
   the process dies of SIGTERM (status −15, a failure to systemd); :class:`GracefulServer`
   re-raises SIGINT only (Ctrl-C stays an interrupt).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn


def abort_margin(shutdown_timeout: float) -> float:
    """Seconds before the shutdown deadline at which running generation is aborted: half the
    timeout, at most 2 s (the rest of the shutdown and the interpreter's exit fit in it)."""
    return min(2.0, max(0.0, shutdown_timeout) / 2)


class GracefulServer(uvicorn.Server):
    """``uvicorn.Server`` whose graceful SIGTERM shutdown ends in exit status 0 and which calls
    ``on_abort`` when in-flight requests are still running ``abort_after`` s into the shutdown."""

    def __init__(self, config: uvicorn.Config, abort_after: float, on_abort: Callable[[], None] | None = None) -> None:
        super().__init__(config)
        self.abort_after = float(abort_after)
        self.on_abort = on_abort

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        timer = None
        if self.on_abort is not None:
            timer = asyncio.get_running_loop().call_later(self.abort_after, self.on_abort)
        try:
            await super().shutdown(sockets)
        finally:
            if timer is not None:
                timer.cancel()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Signal handlers can only be installed from the main thread (servers in threads: none).
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        received: list[int] = []

        def on_signal(sig: int, frame: Any) -> None:
            received.append(sig)
            self.handle_exit(sig, frame)  # uvicorn's: should_exit, a second SIGINT forces it

        originals = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)
        if signal.SIGINT in received:
            signal.raise_signal(signal.SIGINT)  # an interrupt stays an interrupt (KeyboardInterrupt)


def serve(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    shutdown_timeout: float = 10.0,
    on_abort: Callable[[], None] | None = None,
    log_level: str = "info",
    access_log: bool = False,
) -> None:
    """Serve ``app`` until SIGTERM/SIGINT (see the module docs for the shutdown sequence).

    Returns normally after a SIGTERM (the caller exits 0); raises ``SystemExit`` when the app's
    start-up fails (uvicorn's status 3).
    """
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        timeout_graceful_shutdown=math.ceil(shutdown_timeout),  # the backstop; uvicorn counts whole seconds
        access_log=access_log,
    )
    GracefulServer(config, shutdown_timeout - abort_margin(shutdown_timeout), on_abort).run()
