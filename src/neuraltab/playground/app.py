"""The playground's web app: the page, one WebSocket per tab (frames down, JSON commands up), uploads, and the two
"from play to work" downloads (the toy set as CSV, the network as a .ntab model file).

A refused upload is answered 200 with ``{"error": ..., "status": 400 or 413}``: the page shows the message, and a
4xx would also be logged by the browser as a console error.
"""


import asyncio
import json
import secrets
from importlib import resources
from typing import Any, Callable

from ..errors import DataError, UserError, cli_words, option
from .session import Session, TableSource

__all__ = ["create_app", "MAX_UPLOAD_BYTES"]

MAX_UPLOAD_BYTES = 50 * 2**20
_TYPES = {"html": "text/html; charset=utf-8", "js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8"}


def create_app(table: TableSource | None = None, *, token: str | None = None,
               max_upload_bytes: int = MAX_UPLOAD_BYTES) -> Any:
    """The ASGI app. ``table``: the table given on the command line (each tab trains on it until it uploads
    another); ``token``: a secret every request must carry (``?token=``) when set."""
    from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
    from fastapi.responses import JSONResponse, Response

    app = FastAPI(title="neuraltab playground", docs_url=None, redoc_url=None, openapi_url=None)
    sessions: dict[str, Session] = {}
    uploads: dict[str, TableSource] = {}
    app.state.sessions = sessions

    def allowed(params: Any) -> bool:
        return token is None or secrets.compare_digest(str(params.get("token", "")), token)

    def static(name: str) -> bytes:
        return resources.files(__package__).joinpath("static", name).read_bytes()

    @app.get("/")
    def index(request: Request) -> Response:
        if not allowed(request.query_params):
            return Response("a token is required: open the URL the playground printed", status_code=403)
        return Response(static("index.html"), media_type=_TYPES["html"], headers={"Cache-Control": "no-store"})

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/static/{name}")
    def asset(name: str) -> Response:
        if name not in ("playground.js", "playground.css"):
            return Response(status_code=404)
        return Response(static(name), media_type=_TYPES[name.rsplit(".", 1)[1]], headers={"Cache-Control": "no-store"})

    @app.post("/upload")
    async def upload(request: Request) -> Response:
        if not allowed(request.query_params):
            return JSONResponse({"error": "a token is required"}, status_code=403)
        name = request.query_params.get("name", "upload.csv")
        target = request.query_params.get("target", "")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_upload_bytes:
                return JSONResponse({"error": cli_words(
                    f"{name}: the file is over the upload limit of {_size(max_upload_bytes)}; start the playground "
                    f"with the file instead (neuraltab playground FILE {option('target', 'COLUMN')})"), "status": 413})
        try:
            frame, columns = _read_upload(body, name)
            if target and target not in columns:
                from ..errors import closest_names

                raise DataError(f"{name}: target column {target!r} not found; {closest_names(target, columns)}")
        except UserError as exc:
            return JSONResponse({"error": cli_words(exc.template), "option": exc.option, "status": 400})
        key = secrets.token_hex(8)
        uploads[key] = TableSource(data=frame, target=target or columns[-1], name=name)
        if len(uploads) > 16:  # the oldest uploads go once a tab has loaded them
            uploads.pop(next(iter(uploads)))
        return JSONResponse({"upload": key, "columns": columns, "target": uploads[key].target, "rows": len(frame)})

    def download(session_id: str, request: Request, make: Callable[[Any], tuple[bytes, str, str]]) -> Response:
        """A tab's file (its model, its toy set's CSV) as an attachment; a 404 for an unknown tab or a bad token."""
        if not allowed(request.query_params) or session_id not in sessions:
            return Response(status_code=404)
        try:
            body, media_type, filename = make(sessions[session_id])
        except UserError as exc:  # in the command line's words, as the upload's errors are
            return JSONResponse({"error": cli_words(exc.template)}, status_code=400)
        return Response(body, media_type=media_type,
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})

    @app.get("/save/{session_id}")
    def save(session_id: str, request: Request) -> Response:
        def model_file(session: Any) -> tuple[bytes, str, str]:
            stem = session.table.name.rsplit(".", 1)[0] if session.table else session.settings["dataset"]
            return session.model_bytes(), "application/octet-stream", stem + ".ntab"

        return download(session_id, request, model_file)

    @app.get("/data/{session_id}")
    def data_csv(session_id: str, request: Request) -> Response:
        return download(session_id, request,
                        lambda session: (session.data_csv(), "text/csv", f"{session.settings['dataset']}.csv"))

    @app.websocket("/ws")
    async def socket(ws: WebSocket) -> None:
        if not allowed(ws.query_params):
            await ws.close(code=1008)
            return
        await ws.accept()
        loop = asyncio.get_running_loop()
        outbox: asyncio.Queue = asyncio.Queue()
        session_id = secrets.token_hex(8)

        def send(message: Any) -> None:  # from the training thread
            loop.call_soon_threadsafe(outbox.put_nowait, message)

        session: Session | None = None

        async def pump() -> None:
            while True:
                message = await outbox.get()
                if isinstance(message, bytes):
                    await ws.send_bytes(message)
                else:
                    await ws.send_text(json.dumps(message, default=str))

        sender = asyncio.create_task(pump())
        try:
            while True:
                msg = json.loads(await ws.receive_text())
                if msg.get("cmd") == "hello":  # the page's settings from its URL, and the table it trains on
                    if session is not None:
                        await asyncio.to_thread(session.close)
                    dataset = (msg.get("settings") or {}).get("dataset")
                    source = uploads.get(msg.get("upload") or "") or (table if dataset in (None, "table") else None)
                    session = Session(send, table=source, settings=_settings(msg.get("settings")))
                    sessions[session_id] = session
                    await ws.send_text(json.dumps({"type": "session", "id": session_id,
                                                   "table": source.name if source else None}))
                    session.start()
                    if msg.get("play"):
                        session.command({"cmd": "play"})
                elif session is not None:
                    session.command(msg)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            sender.cancel()
            sessions.pop(session_id, None)
            if session is not None:
                await asyncio.to_thread(session.close)  # the tab closed: its training thread ends

    return app


def _size(n: int) -> str:
    return f"{n / 2**20:g} MiB" if n >= 2**20 else f"{n:,} bytes"


def _settings(given: Any) -> dict[str, Any]:
    from .session import DEFAULTS

    if not isinstance(given, dict):
        return {}
    return {k: v for k, v in given.items() if k in DEFAULTS}


def _read_upload(body: bytes, name: str) -> tuple[Any, list[str]]:
    """The uploaded table read as ``neuraltab train`` reads a file (its format from its name's extension)."""
    import os
    import tempfile

    from ..data.read import read_table

    suffix = os.path.splitext(name)[1].lower() or ".csv"
    if suffix not in (".csv", ".tsv", ".txt", ".parquet", ".jsonl", ".json", ".ndjson"):
        raise DataError(f"{name}: not a table file this playground reads; upload CSV, TSV, Parquet or JSON lines")
    with tempfile.TemporaryDirectory(prefix="neuraltab-upload-") as folder:
        path = os.path.join(folder, os.path.basename(name) or f"upload{suffix}")
        with open(path, "wb") as f:
            f.write(body)
        try:
            frame = read_table(path)
        except UserError as exc:  # name the file as the user knows it, not the temporary copy
            raise type(exc)(exc.template.replace(path, name), option=exc.option) from None
    return frame, [str(c) for c in frame.columns]

