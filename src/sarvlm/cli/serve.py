"""`sarvlm serve --model PATH`: an OpenAI-compatible HTTP server (with the ``geo`` extension) and a web UI."""

from __future__ import annotations

import argparse
import gc
import os
import sys

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "serve",
        help="serve a model over an OpenAI-compatible HTTP API with a web UI",
        description="Serve a model (tiny name, stock Qwen2.5-VL/Qwen3-VL directory, sarvlm run or adapter) at "
        "/v1/chat/completions (OpenAI chat format; images as data URLs of PNG, JPEG or GeoTIFF bytes; "
        "the `geo` extension samples AlphaEarth priors from --priors-source), with /v1/models, /health, "
        "/metrics and a web UI at /ui/. Binds to 127.0.0.1 by default; set --api-key (or SARVLM_API_KEY) "
        "before exposing it. SIGTERM lets in-flight requests finish (aborting them just before --shutdown-timeout s) "
        "and exits 0.",
    )
    p.add_argument(
        "--model", required=True, help="model directory, adapter directory, run directory, or tiny-qwen2.5-vl"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--priors-source",
        metavar="SPEC",
        help="prior source: aef-cog:DIR, aef-zarr:PATH or earthengine[:PROJECT] (default: the model's own)",
    )
    p.add_argument(
        "--api-key",
        default=None,
        help="require `Authorization: Bearer KEY` on the API (default: $SARVLM_API_KEY; none = open)",
    )
    p.add_argument("--served-model-name", help="the model id clients use (default: the --model argument)")
    p.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda, cuda:1, ...")
    p.add_argument(
        "--dtype",
        default="auto",
        help="auto (bf16 on GPUs that support it, else fp16; as saved on CPU), float32, bf16, fp16",
    )
    p.add_argument(
        "--allow-remote-images", action="store_true", help="also fetch http(s):// image URLs (off: data URLs only)"
    )
    g = p.add_argument_group("capacity and limits")
    g.add_argument("--max-batch", type=int, default=8, help="requests generated together (concurrency cap)")
    g.add_argument("--max-queue", type=int, default=64, help="requests allowed to wait; beyond: 503 + Retry-After")
    g.add_argument("--max-tokens", type=int, default=2048, help="largest max_tokens a request may ask for")
    g.add_argument("--max-body-mb", type=float, default=48.0, help="largest request body (MiB), chunked included")
    g.add_argument("--max-images", type=int, default=4, help="images per request")
    g.add_argument("--max-pixels", type=int, default=8192 * 8192, help="width x height of one image")
    g.add_argument(
        "--shutdown-timeout",
        type=float,
        default=10.0,
        help="SIGTERM: seconds within which in-flight requests finish or are aborted and the process exits 0",
    )
    g.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    return p


def run(args: argparse.Namespace) -> int:
    from sarvlm.core.errors import SarvlmError

    # Before anything imports rasterio: GDAL reads GDAL_SKIP when it registers its drivers.
    from sarvlm.serve.images import disable_risky_gdal_drivers

    disable_risky_gdal_drivers()
    for name in ("max_batch", "max_queue", "max_tokens", "max_images", "max_pixels"):
        if getattr(args, name) < 1:
            raise SarvlmError(f"--{name.replace('_', '-')} must be >= 1")
    if args.shutdown_timeout < 0:
        raise SarvlmError(f"--shutdown-timeout {args.shutdown_timeout} must be >= 0 (seconds)")
    if not 0 <= args.port <= 65535:
        raise SarvlmError(f"--port {args.port} is not a TCP port")
    try:
        from sarvlm.serve.app import ServeConfig, create_app
        from sarvlm.serve.server import serve
    except ImportError as exc:
        from sarvlm.core.errors import MissingDependency

        raise MissingDependency(exc.name or "fastapi", "serve", "sarvlm serve") from None
    from sarvlm.models.loading import load_model
    from sarvlm.serve.engine import EngineConfig, resolve_device
    from sarvlm.serve.limits import Limits

    api_key = args.api_key or os.environ.get("SARVLM_API_KEY") or None
    if args.host not in LOOPBACK and not api_key:
        print(
            f"sarvlm serve: warning: binding to {args.host} without --api-key: anyone who can reach it can use it",
            file=sys.stderr,
        )
    device = resolve_device(args.device)
    # auto: bf16 on CUDA GPUs that support it, fp16 on older ones (sarvlm.models.device.resolve_dtype);
    # as saved on the CPU
    dtype = None if args.dtype == "auto" and not device.startswith("cuda") else args.dtype
    model, processor = load_model(args.model, dtype=dtype, device=device, attention="auto")
    from sarvlm.models.device import describe_placement

    config = ServeConfig(
        model_id=args.served_model_name or str(args.model),
        limits=Limits(
            max_body_bytes=int(args.max_body_mb * 1024 * 1024),
            max_images=args.max_images,
            max_pixels=args.max_pixels,
            max_tokens=args.max_tokens,
        ),
        engine=EngineConfig(max_batch=args.max_batch, max_queue=args.max_queue),
        api_key=api_key,
        priors_source=args.priors_source,
        allow_remote_images=args.allow_remote_images,
        shutdown_timeout_s=args.shutdown_timeout,
    )
    app = create_app(model, processor, config)
    # The model, torch and transformers are loaded for the life of the process: move their objects
    # out of the cyclic GC's reach, so full collections between requests (and the one at exit,
    # after a SIGTERM) do not walk hundreds of thousands of long-lived objects every time.
    gc.collect()
    gc.freeze()
    print(
        f"sarvlm serve: {config.model_id} on {describe_placement(model)}; API http://{args.host}:{args.port}/v1, "
        f"UI http://{args.host}:{args.port}/ui/{' (API key required)' if api_key else ''}",
        file=sys.stderr,
        flush=True,
    )
    # SIGTERM: stop accepting, let in-flight requests finish, abort the generation still running
    # shortly before --shutdown-timeout (those requests are answered, finish_reason "abort"), exit 0.
    serve(
        app,
        host=args.host,
        port=args.port,
        shutdown_timeout=args.shutdown_timeout,
        on_abort=app.state.engine.cancel_all,
        log_level=args.log_level,
        access_log=args.log_level == "debug",
    )
    return 0
