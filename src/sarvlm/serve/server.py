"""Running the app under uvicorn with the shutdown behaviour process managers expect.

SIGTERM (systemd ``stop``, Kubernetes pod deletion, ``docker stop``) asks for a graceful stop:

1. uvicorn stops accepting connections and lets in-flight requests finish;
2. at ``shutdown_timeout`` seconds, ``on_shutdown_timeout`` runs (``sarvlm serve``: the engine's
   :meth:`~sarvlm.serve.engine.Engine.cancel_all`): generation still running stops at the end of
   its decoding step and each such request is *answered* (``finish_reason: "abort"``; a stream
   ends with ``data: [DONE]``) rather than cut off;
3. whatever is still open :data:`HARD_STOP_GRACE_S` seconds later is cancelled by uvicorn;
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

HARD_STOP_GRACE_S = 5.0  # after on_shutdown_timeout, before uvicorn cancels what is still open


class GracefulServer(uvicorn.Server):
    """``uvicorn.Server`` whose graceful SIGTERM shutdown ends in exit status 0 and which calls
    ``on_shutdown_timeout`` when in-flight requests are still running ``shutdown_timeout`` s in."""

    def __init__(
        self,
        config: uvicorn.Config,
        shutdown_timeout: float,
        on_shutdown_timeout: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(config)
        self.shutdown_timeout = float(shutdown_timeout)
        self.on_shutdown_timeout = on_shutdown_timeout

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        timer = None
        if self.on_shutdown_timeout is not None:
            timer = asyncio.get_running_loop().call_later(self.shutdown_timeout, self.on_shutdown_timeout)
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
    on_shutdown_timeout: Callable[[], None] | None = None,
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
        # uvicorn takes whole seconds; it is the backstop, on_shutdown_timeout keeps the exact time
        timeout_graceful_shutdown=math.ceil(shutdown_timeout + (HARD_STOP_GRACE_S if on_shutdown_timeout else 0.0)),
        access_log=access_log,
    )
    GracefulServer(config, shutdown_timeout, on_shutdown_timeout).run()
