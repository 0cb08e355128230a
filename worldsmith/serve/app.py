"""The FastAPI app: routes, security (token, origins), JSON errors, and the lifecycle of the job workers and the
play sessions. See worldsmith/serve/__init__.py for the endpoints."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from worldsmith import __version__
from worldsmith.envs.evaluate import eval_seeds
from worldsmith.envs.world_model import load_reader
from worldsmith.errors import ConfigError, VideoError, WorldsmithError
from worldsmith.guard.prompt import PromptGuardConfig
from worldsmith.guard.rails import GuardConfig, Guardrails
from worldsmith.serve import guard
from worldsmith.serve.http import Gate, fail, install_error_handlers
from worldsmith.serve.jobs import JobQueue, JobRequest, run_generation, validate
from worldsmith.serve.models import ServedModel, load_models
from worldsmith.serve.play import PlaySession, Sessions, png_data_url
from worldsmith.serve.settings import ServeSettings
from worldsmith.serve.uploads import NotMedia, TooLarge, Uploads
from worldsmith.worlds.arm import ArmWorld
from worldsmith.worlds.orbit import OrbitWorld
from worldsmith.worlds.base import WorldConfig

log = logging.getLogger("worldsmith.serve")
STATIC = Path(__file__).resolve().parent / "static"
RESULT_FILES = {"video": ("video.mp4", "video/mp4"), "truth": ("truth.mp4", "video/mp4"),
                "sheet": ("sheet.png", "image/png")}  # fmt: skip
MAX_STARTS = 32


class PlayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(description="A playable served model (GET /api/models).")
    seed: int | None = Field(None, ge=0, lt=2**31, description="A simulator episode to start from (GET /api/starts).")
    input: str | None = Field(None, description="Or an uploaded image (POST /api/uploads): its first frame.")
    task: str | None = Field(None, description="Show a task's goal and success: reach, push or pick_place.")


def create_app(settings: ServeSettings | None = None, *, guards: Sequence[Any] = (),
               models: dict[str, ServedModel] | None = None) -> FastAPI:  # fmt: skip
    """The server's app. ``models``: already loaded models (else ``settings.models`` are loaded); ``guards``: the
    guardrails every prompt and output passes (serve/guard.py)."""
    s = settings or ServeSettings()
    s.check_exposure()
    guards = list(guards)
    models = models if models is not None else load_models(s.models)
    work = s.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    if s.guardrail:
        rails_cfg = GuardConfig(prompt=PromptGuardConfig(allow=list(s.guard_allow), deny=list(s.guard_deny)))
        guards.append(guard.RailsGuard(Guardrails(rails_cfg, entry="serve", audit_log=work / "guard_audit.jsonl")))
    uploads = Uploads(work / "uploads", max_bytes=s.max_upload_bytes, max_frames=s.max_upload_frames,
                      max_side=s.max_upload_side, keep=s.keep_uploads)  # fmt: skip
    queue = JobQueue(work / "jobs", lambda job: run_generation(job, models, uploads, guards), workers=s.workers,
                     capacity=s.queue_size, timeout_s=s.job_timeout_s, keep=s.keep_jobs, threads=s.threads)  # fmt: skip
    sessions = Sessions(s.max_sessions, s.session_idle_s, s.session_max_s)
    starts_thread = ThreadPoolExecutor(1, thread_name_prefix="worldsmith-starts")  # owns the start renderer
    start_cache: dict[tuple[str, int, int], str] = {}
    start_worlds: dict[tuple[str, int], ArmWorld | OrbitWorld] = {}
    readers: dict[str, Any] = {}
    validating = asyncio.Semaphore(2)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        queue.start()

        async def reap() -> None:
            while True:
                await asyncio.sleep(5)
                for sid in await run_in_threadpool(sessions.reap):
                    log.info("closed idle play session %s", sid)

        reaper = asyncio.create_task(reap())
        try:
            yield
        finally:
            reaper.cancel()
            await run_in_threadpool(sessions.close_all)
            await run_in_threadpool(queue.stop)

            def close_worlds() -> None:
                for w in start_worlds.values():
                    w.close()

            starts_thread.submit(close_worlds).result(timeout=30)
            starts_thread.shutdown(wait=False)

    app = FastAPI(title="worldsmith", version=__version__, lifespan=lifespan,
                  description="World models over HTTP: generation jobs, uploads, and play sessions over a websocket. "
                              "Every error is JSON {\"error\": one sentence}.")  # fmt: skip
    app.state.settings, app.state.models, app.state.queue, app.state.sessions = s, models, queue, sessions
    app.state.uploads = uploads
    if s.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=s.cors_origins, allow_methods=["*"], allow_headers=["*"])
    app.add_middleware(Gate, token=s.token, origins=s.cors_origins)

    install_error_handlers(app)

    # -- pages ----------------------------------------------------------------------------------------------------
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> RedirectResponse:
        return RedirectResponse("/play")

    @app.get("/play", include_in_schema=False)
    async def play_page() -> FileResponse:
        return FileResponse(STATIC / "play.html")

    @app.get("/gallery", include_in_schema=False)
    async def gallery_page() -> FileResponse:
        return FileResponse(STATIC / "gallery.html")

    # -- models, health -------------------------------------------------------------------------------------------
    def model_or_404(name: str) -> ServedModel:
        m = models.get(name)
        if m is None:
            fail(404, f"no model named {name!r} is served here; GET /api/models lists them.")
        return m

    @app.get("/api/health", summary="Server status")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__, "models": list(models), "jobs": queue.counts(),
                "workers": s.workers, "queue_size": s.queue_size,
                "play_sessions": {"open": len(sessions.open), "limit": s.max_sessions}}  # fmt: skip

    @app.get("/api/models", summary="The served models")
    async def list_models() -> list[dict[str, Any]]:
        return [m.describe() for m in models.values()]

    @app.get("/api/models/{name}", summary="One model, with its model card")
    async def get_model(name: str) -> dict[str, Any]:
        return model_or_404(name).describe(card=True)

    # -- uploads --------------------------------------------------------------------------------------------------
    @app.post("/api/uploads", status_code=201, summary="Upload an image or video (the body is the file's bytes)",
              openapi_extra={"requestBody": {"required": True, "content": {"application/octet-stream": {
                  "schema": {"type": "string", "format": "binary"}}}}})  # fmt: skip
    async def upload(request: Request) -> dict[str, Any]:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > s.max_upload_bytes:
            fail(413, f"the upload is larger than the server's limit of {s.max_upload_bytes // 2**20} MB; send a "
                      f"shorter or smaller video.")  # fmt: skip
        if request.headers.get("content-type", "").startswith("multipart/"):
            fail(415, "send the file's bytes as the request body (e.g. curl --data-binary @clip.mp4), not a form.")
        try:
            folder = await uploads.receive(request.stream())
        except TooLarge as e:
            fail(413, str(e))
        except VideoError as e:
            fail(400, str(e))
        async with validating:
            try:
                return await run_in_threadpool(uploads.validate, folder)
            except NotMedia as e:
                fail(415, str(e))
            except VideoError as e:
                fail(422, str(e))

    # -- jobs -----------------------------------------------------------------------------------------------------
    def job_or_404(job_id: str):
        job = queue.get(job_id)
        if job is None:
            fail(404, f"no job has the id {job_id!r}; GET /api/jobs lists them.")
        return job

    @app.post("/api/jobs", status_code=202, summary="Submit a generation job")
    async def submit(req: JobRequest) -> dict[str, Any]:
        try:
            request = validate(req, models, uploads, s, guards)
        except guard.Blocked as e:
            fail(422, str(e))
        except ConfigError as e:
            fail(422, str(e))
        return queue.submit(request).public()

    @app.get("/api/jobs", summary="Jobs, newest first")
    async def jobs() -> list[dict[str, Any]]:
        return [j.public() for j in queue.list()]

    @app.get("/api/jobs/{job_id}", summary="A job's state and progress")
    async def job_status(job_id: str) -> dict[str, Any]:
        return job_or_404(job_id).public()

    @app.delete("/api/jobs/{job_id}", summary="Cancel a job")
    async def cancel(job_id: str) -> dict[str, Any]:
        job = job_or_404(job_id)
        if job.state in ("done", "failed", "cancelled"):
            fail(409, f"the job has already {'finished' if job.state == 'done' else job.state}; nothing to cancel.")
        return queue.cancel(job).public()

    @app.get("/api/jobs/{job_id}/{name}", summary="A result: video, truth (the simulator's video) or sheet")
    async def result(job_id: str, name: str) -> FileResponse:
        job = job_or_404(job_id)
        if name not in RESULT_FILES:
            fail(404, f"a job's results are {', '.join(RESULT_FILES)}; {name!r} is not one of them.")
        if job.state != "done":
            fail(409, f"the job is {job.state}; its results are there once it is done.")
        if name not in job.outputs:
            fail(404, f"this job has no {name} (only {', '.join(job.outputs)}).")
        filename, media = RESULT_FILES[name]
        return FileResponse(job.folder / filename, media_type=media, filename=f"worldsmith-{job.id[:8]}-{filename}")

    # -- play -----------------------------------------------------------------------------------------------------
    def render_start(world: str, size: int, seed: int) -> str:
        if (world, size) not in start_worlds:
            start_worlds[world, size] = (OrbitWorld(WorldConfig(size=size, views=1)) if world == "orbit"
                                         else ArmWorld(WorldConfig(size=size)))  # fmt: skip
        return png_data_url(start_worlds[world, size].reset(seed))

    @app.get("/api/starts", summary="Held-out simulator first frames to start from")
    async def starts(model: str, count: int = Query(8, ge=1, le=MAX_STARTS)) -> dict[str, Any]:
        m = model_or_404(model)
        if m.world is None:
            fail(404, f"{m.name} was not trained on a built-in world, so it has no simulator starts.")
        out = []
        loop = asyncio.get_running_loop()
        for seed in eval_seeds(count):
            key = (m.world, m.size, seed)
            if key not in start_cache:
                start_cache[key] = await loop.run_in_executor(starts_thread, render_start, m.world, m.size, seed)
            out.append({"seed": seed, "image": start_cache[key]})
        return {"model": m.name, "starts": out}

    def reader_for(m: ServedModel):
        if "arm-reader" not in readers:
            readers["arm-reader"] = load_reader("arm-reader", m.generator.device)
        return readers["arm-reader"]

    @app.post("/api/play", status_code=201, summary="Open a play session")
    async def open_session(req: PlayRequest) -> dict[str, Any]:
        m = model_or_404(req.model)
        if not m.playable:
            fail(422, f"{m.name} cannot be played: {m.why_not_playable}")
        if (req.seed is None) == (req.input is None):
            fail(422, "start a session from a simulator seed or from an uploaded image (input), one of them.")
        image = None
        if req.input is not None:
            if uploads.meta(req.input) is None:
                fail(422, f"no upload has the id {req.input!r}; upload the image first (POST /api/uploads).")
            image = (await run_in_threadpool(uploads.frames, req.input, first=1))
            try:
                image = (await run_in_threadpool(guard.check_video, guards, image))[0]
            except guard.Blocked as e:
                fail(422, str(e))
        sessions.reserve()
        session = None
        try:
            reader = reader_for(m) if req.task else None
            session = await run_in_threadpool(lambda: PlaySession(m, seed=req.seed, image=image, task=req.task,
                                                                  reader=reader, max_record=s.max_record_frames,
                                                                  threads=s.threads))
        except WorldsmithError as e:
            fail(422, str(e))
        finally:
            sessions.add(session)
        return session.describe() | {"first": session.first}

    @app.delete("/api/play/{sid}", summary="Close a play session")
    async def close_session(sid: str) -> dict[str, Any]:
        if not await run_in_threadpool(sessions.close, sid):
            fail(404, f"no open play session has the id {sid!r}.")
        return {"session": sid, "closed": True}

    @app.get("/api/play/{sid}/recording", summary="The session so far as mp4")
    async def recording(sid: str) -> Response:
        session = sessions.get(sid)
        if session is None:
            fail(404, f"no open play session has the id {sid!r}.")
        data = await run_in_threadpool(session.recording)
        name = f"worldsmith-play-{session.model.name}-{session.seed if session.seed is not None else 'image'}.mp4"
        return Response(data, media_type="video/mp4", headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @app.websocket("/api/play/{sid}/ws")
    async def play_socket(ws: WebSocket, sid: str) -> None:
        await ws.accept()
        session = sessions.get(sid)
        if session is None:
            await ws.send_json({"type": "error", "message": f"no open play session has the id {sid!r}; open one "
                                                             f"with POST /api/play."})  # fmt: skip
            return await ws.close(code=4404)
        if session.connected:
            await ws.send_json({"type": "error", "message": "this session is already open in another page."})
            return await ws.close(code=4409)
        session.connected = True
        session.last_active = time.monotonic()
        loop = asyncio.get_running_loop()
        try:
            await ws.send_json(session.last_message)
            while True:
                text = await ws.receive_text()
                session.last_active = time.monotonic()
                try:
                    msg = json.loads(text)
                    if not isinstance(msg, dict):
                        raise ConfigError("a message is a JSON object with a 'type'.")
                    kind = msg.get("type")
                    if kind == "step":
                        action = session.parse_action(msg.get("action"))
                        out = await loop.run_in_executor(session.executor, session.step, action, msg.get("id"))
                    elif kind == "reset":
                        out = await loop.run_in_executor(session.executor, session.reset)
                    elif kind == "ping":
                        out = {"type": "pong", "t": msg.get("t")}
                    else:
                        raise ConfigError(f"unknown message type {kind!r}; send 'step', 'reset' or 'ping'.")
                except json.JSONDecodeError:
                    out = {"type": "error", "message": "a message must be JSON, e.g. {\"type\": \"step\", ...}."}
                except WorldsmithError as e:
                    out = {"type": "error", "message": str(e)}
                except RuntimeError:  # the session was closed while this step waited (idle, or deleted)
                    await ws.send_json({"type": "error", "message": "the play session was closed; open a new one."})
                    return await ws.close(code=4410)
                await ws.send_json(out)
        except WebSocketDisconnect:
            pass
        finally:
            session.connected = False

    return app
