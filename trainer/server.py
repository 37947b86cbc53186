"""The FastAPI application: ``create_app(config, engine)`` and a blocking :func:`serve`.

The app factory takes the engine as an argument, so tests inject one and
``python -m trainer`` passes the real :class:`trainer.ml.engine.LocalEngine`. Starting
the app opens the SQLite store and starts the job threads (recovering jobs left by an
earlier process); stopping it asks a running training to stop at its next step, leaving
the job ``running`` so the next start resumes it.

Every request first passes :class:`trainer.api.gate.RequestGate` (Host, cross-site,
API key, body size), before any body is read. ``/health`` is the one route open without
the key, and it answers ``{"status": "ok"}`` and nothing more. A config that would expose
the server beyond loopback without a key is refused (:func:`trainer.config.check_exposure`).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from trainer.api import v1_router
from trainer.api.chat_queue import ChatQueue
from trainer.api.deps import AppContext
from trainer.api.gate import RequestGate
from trainer.config import TrainerConfig, check_exposure
from trainer.datadir import PRIVATE_DIR, ensure_free
from trainer.engine import Engine
from trainer.errors import install_error_handlers
from trainer.jobs import JobManager
from trainer.models import ModelResolver
from trainer.store import Store

log = logging.getLogger(__name__)


def create_app(config: TrainerConfig, engine: Engine) -> FastAPI:
    """Build the app; state is opened when the app starts (its lifespan).

    Raises :class:`trainer.config.ConfigError` for a config that must not be served.
    """
    check_exposure(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        config.data_dir.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        ensure_free(config.data_dir)  # refuse a second trainer before its store is opened
        store = Store(config.db_path)
        jobs = JobManager(store, engine, files_dir=config.files_dir, jobs_dir=config.jobs_dir, org=config.org)
        chats = ChatQueue(config.chat_slots, config.chat_queue)
        app.state.ctx = AppContext(config, store, engine, jobs, ModelResolver(store, engine), chats)
        jobs.start()
        log.info("trainer serving %s with data in %s", ", ".join(engine.base_models()), config.data_dir)
        try:
            yield
        finally:
            jobs.stop()
            store.close()

    app = FastAPI(title="tunecord trainer", lifespan=lifespan, docs_url=None, redoc_url=None)
    install_error_handlers(app)
    app.include_router(v1_router())
    app.add_middleware(RequestGate, config=config)  # outermost: runs before anything reads the body

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, str]:  # on the event loop: never waits for a thread
        return {"status": "ok"}

    return app


def uvicorn_server(config: TrainerConfig, engine: Engine, log_level: str = "info") -> uvicorn.Server:
    """A uvicorn server for the app (not yet started)."""
    app = create_app(config, engine)
    return uvicorn.Server(uvicorn.Config(app, host=config.host, port=config.port, log_level=log_level,
                                         timeout_graceful_shutdown=5))  # fmt: skip


def serve(config: TrainerConfig, engine: Engine, sock: socket.socket | None = None) -> None:
    """Run the server until interrupted (SIGINT/SIGTERM stop it gracefully)."""
    server = uvicorn_server(config, engine)
    server.run(sockets=[sock] if sock is not None else None)
