"""Serving: an HTTP API over the world models, a job queue, and the play page where a person drives a model.

``worldsmith serve`` / ``worldsmith play`` (serve/cli.py) run ``create_app`` (serve/app.py) under uvicorn. The API
(OpenAPI docs at ``/docs``; every error is JSON ``{"error": one sentence}``):

    GET    /api/health                      status, models, queue and session counts
    GET    /api/models, /api/models/{name}  name, family, kinds, conditions, size, fps, key controls, model card
    POST   /api/uploads                     body: the bytes of an image or video (probed, fully decoded) -> {id, ...}
    POST   /api/jobs                        a generation job (text2world | video2world | action) -> 202 {id}; 429
    GET    /api/jobs, /api/jobs/{id}        state (queued, running, done, failed, cancelled), progress, settings
    GET    /api/jobs/{id}/video|truth|sheet the result: mp4 (the simulator's when there is one) or contact-sheet PNG
    DELETE /api/jobs/{id}                   cancel
    GET    /api/starts?model=M&count=N      held-out simulator first frames to start from (PNG data URLs)
    POST   /api/play                        open a play session -> {session, controls, ...}; 429 when full
    WS     /api/play/{session}/ws           {"type": "step", "id": n, "action": [...]} | {"type": "reset"} ->
                                            {"type": "frame", "id", "step", "frame", "sim", "compute_ms", "info"}
    GET    /api/play/{session}/recording    the session so far as mp4 (model | simulator side by side)
    DELETE /api/play/{session}              close it
    GET    /play, /gallery                  the pages (static files in serve/static, no build step)

Jobs run on a bounded pool of worker threads (serve/jobs.py); each play session steps its world model and its
simulator on a thread of its own (serve/play.py: MuJoCo's GL context belongs to one thread). Guardrails plug in at
one place (serve/guard.py) on every prompt and every output.
"""
