"""runpod's local API (`--rp_serve_api`) also at RunPod's own paths, `/<endpoint id>/runsync`
and the rest, so a client written for RunPod works against it with only its base URL changed
(`RUNPOD_ENDPOINT_BASE_URL=http://127.0.0.1:8000` for runpod's SDK, which builds
`<base>/<endpoint id>/runsync`; runpod's local API serves only `/runsync`).
"""

from __future__ import annotations

from typing import Any

from runpod.serverless.modules import rp_fastapi

# runpod's simulation routes (path: WorkerAPI method) and the methods RunPod's API and SDK use
# for each: the SDK GETs /status and /stream, which runpod's local API has as POST only.
ROUTES = {"/run": ("_sim_run", ["POST"]), "/runsync": ("_sim_runsync", ["POST"]),
          "/status/{job_id}": ("_sim_status", ["GET", "POST"]),
          "/stream/{job_id}": ("_sim_stream", ["GET", "POST"])}


class WorkerAPI(rp_fastapi.WorkerAPI):
    """runpod's WorkerAPI with each of its job routes also under `/{endpoint_id}` (any id:
    the local API serves one endpoint). The bare routes are unchanged."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        for path, (method, http_methods) in ROUTES.items():
            self.rp_app.add_api_route(
                "/{endpoint_id}" + path, getattr(self, method), methods=http_methods,
                response_model_exclude_none=True, include_in_schema=False)


def install() -> None:
    """Make runpod.serverless.start serve the routes above: it builds `rp_fastapi.WorkerAPI`
    when it starts the local API (looked up then, so this must run before start)."""
    rp_fastapi.WorkerAPI = WorkerAPI  # type: ignore[misc]
