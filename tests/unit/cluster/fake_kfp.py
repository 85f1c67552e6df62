"""A stand-in for the KFP v2beta1 REST API on 127.0.0.1: the endpoints `kfp.Client` calls for
submitting, reading, listing and terminating runs, with bearer-token checks. It records every
request so tests can check what the client sent (headers included)."""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

API = "/apis/v2beta1"
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"}
CREATED_AT = "2026-11-26T10:00:00Z"
TASKS = ("start-run", "prepare-data", "pretrain", "evaluate", "register")


@dataclass
class Recorded:
    method: str
    path: str
    query: dict
    headers: dict  # names lower-cased, as HTTP treats them
    body: dict | None


@dataclass
class FakeKfp:
    valid_tokens: set[str] = field(default_factory=set)
    expired_tokens: set[str] = field(default_factory=set)
    # Each GET of a run moves it one state along this path.
    progression: tuple[str, ...] = ("PENDING", "RUNNING", "RUNNING", "SUCCEEDED")
    experiments: dict[str, dict] = field(default_factory=dict)
    runs: dict[str, dict] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""

    def start(self) -> "FakeKfp":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                fake._handle(self, "GET")

            def do_POST(self):
                fake._handle(self, "POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add_run(self, display_name: str, runtime_json: str, state: str = "RUNNING") -> str:
        run_id = str(uuid.uuid4())
        self.runs[run_id] = {
            "run_id": run_id, "display_name": display_name, "experiment_id": "exp-0", "state": state,
            "created_at": CREATED_AT, "runtime_config": {"parameters": {"runtime_json": runtime_json}}, "polls": 0,
        }
        return run_id

    # --- request handling ---------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parsed = urlparse(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = json.loads(handler.rfile.read(length)) if length else None
        headers = {name.lower(): value for name, value in handler.headers.items()}
        self.requests.append(Recorded(method, parsed.path, parse_qs(parsed.query), headers, body))
        status, document = self._authorise(handler.headers.get("Authorization"))
        if status == 200:
            status, document = self._route(method, parsed.path, parse_qs(parsed.query), body)
        payload = json.dumps(document).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def _authorise(self, header: str | None) -> tuple[int, dict]:
        if not self.valid_tokens and not self.expired_tokens:
            return 200, {}
        token = header[len("Bearer "):] if header and header.startswith("Bearer ") else None
        if token in self.expired_tokens:
            return 401, {"error": "Jwt is expired", "code": 16, "message": "Jwt is expired"}
        if token not in self.valid_tokens:
            return 401, {"error": "Jwt is missing", "code": 16, "message": "Jwt is missing"}
        return 200, {}

    def _route(self, method: str, path: str, query: dict, body: dict | None) -> tuple[int, dict]:
        if path == f"{API}/healthz" and method == "GET":
            return 200, {"commit_sha": "fake", "tag_name": "2.5.0", "multi_user": False}
        if path == f"{API}/experiments":
            return self._experiments(method, query, body)
        if path == f"{API}/runs":
            return self._create_run(body) if method == "POST" else self._list_runs()
        if path.startswith(f"{API}/runs/"):
            run_id, _, action = path[len(f"{API}/runs/"):].partition(":")
            if run_id not in self.runs:
                return 404, {"error": f"Run {run_id} not found", "code": 5, "message": f"Run {run_id} not found"}
            if method == "POST" and action == "terminate":
                self.runs[run_id]["state"] = "CANCELING"
                return 200, {}
            if method == "GET" and not action:
                return 200, self._poll(run_id)
        return 404, {"error": f"no route {method} {path}", "code": 5, "message": "not found"}

    def _experiments(self, method: str, query: dict, body: dict | None) -> tuple[int, dict]:
        if method == "POST":
            experiment_id = str(uuid.uuid4())
            self.experiments[experiment_id] = {**body, "experiment_id": experiment_id, "created_at": CREATED_AT}
            return 200, self.experiments[experiment_id]
        matching = list(self.experiments.values())
        if "filter" in query:
            predicate = json.loads(query["filter"][0])["predicates"][0]
            matching = [e for e in matching if e["display_name"] == predicate["stringValue"]]
        return 200, {"experiments": matching, "total_size": len(matching)}

    def _create_run(self, body: dict) -> tuple[int, dict]:
        run_id = str(uuid.uuid4())
        self.runs[run_id] = {**body, "run_id": run_id, "state": self.progression[0], "created_at": CREATED_AT, "polls": 0}
        return 200, self._public(self.runs[run_id])

    def _list_runs(self) -> tuple[int, dict]:
        runs = [self._public(run) for run in self.runs.values()]
        return 200, {"runs": runs, "total_size": len(runs)}

    def _poll(self, run_id: str) -> dict:
        run = self.runs[run_id]
        if run["state"] == "CANCELING":
            run["state"] = "CANCELED"
        elif run["state"] not in TERMINAL and run["state"] in self.progression:
            run["polls"] += 1
            run["state"] = self.progression[min(run["polls"], len(self.progression) - 1)]
        document = self._public(run)
        document["run_details"] = {"task_details": self._tasks(run)}
        if run["state"] in TERMINAL:
            document["finished_at"] = "2026-11-26T10:30:00Z"
        return document

    def _tasks(self, run: dict) -> list[dict]:
        done = {"SUCCEEDED": len(TASKS), "RUNNING": 2, "PENDING": 0}.get(run["state"], 2)
        tasks = []
        for index, name in enumerate(TASKS):
            state = "SUCCEEDED" if index < done else ("RUNNING" if index == done and run["state"] == "RUNNING" else "PENDING")
            tasks.append({
                "display_name": name, "state": state, "start_time": CREATED_AT,
                "child_tasks": [{"pod_name": f"{run['display_name']}-{name}-pod"}],
            })
        return tasks

    @staticmethod
    def _public(run: dict) -> dict:
        return {key: value for key, value in run.items() if key != "polls"}
